"""Errors raised by the streams package."""

from conf.errors import PinstreamError


class StreamError(PinstreamError):
    """Base class for every error of the streams package."""


class InvalidRecord(StreamError):
    """A record refused for a reason of its own; it belongs on a dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPinEvent(InvalidRecord):
    """A Kafka record breaks the pin event contract; it belongs on the dead-letter topic."""


class DeliveryFailed(StreamError):
    """Records sent to Kafka were not acknowledged: they are not known to be written."""


class CheckpointFailed(StreamError):
    """A checkpoint could not be committed; nothing of it was, and its records are read again."""


class InvalidLogRecord(InvalidRecord):
    """An embeddings-log record that no shard may apply (undecodable, foreign schema or
    generation); it goes to a dead-letter place with its offset."""
