"""Errors raised on purpose by the cluster package."""

from conf.errors import PinstreamError


class ClusterError(PinstreamError):
    """Base class for every error of the cluster package."""


class PlanError(ClusterError):
    """A capacity plan cannot be made from what was given (bad target, unsized index spec)."""
