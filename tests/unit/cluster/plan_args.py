"""`pinstream plan` arguments as the CLI parses them, for the cluster tests."""

from __future__ import annotations

import argparse

from cluster.plan_command import add_plan_parser

# The issue's example: 10e9 pins, 2e6 queries/s, 20,000 pins/s.
ISSUE_ARGS = [
    "plan", "--pins", "10e9", "--qps", "2e6", "--ingest-rate", "20000",
    "--dim", "384", "--index", "IVF65536,PQ32",
]  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    """`argv` parsed by a `pinstream` parser that has the `plan` subcommand."""
    parser = argparse.ArgumentParser(prog="pinstream")
    add_plan_parser(parser.add_subparsers(required=True, metavar="command"))
    return parser.parse_args(argv)
