"""`pinstream backfill` and `pinstream traffic`: build a generation, move traffic to it, back."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import requests

from conf.config import PinstreamConfig
from conf.errors import PinstreamError
from jobs.console import Progress, quiet_terminal
from jobs.stack import connect_ray, resolved_bootstrap, running_state
from serve.generation import generation_app_name
from serve.traffic import TrafficPolicy, TrafficStore

ADOPTION_TIMEOUT_S = 30.0


def add_generation_parsers(commands: Any) -> None:
    """Add the backfill and traffic commands to the `pinstream` parser."""
    backfill = commands.add_parser(
        "backfill",
        help="build a new index generation with model V from every pin, beside the serving one",
    )
    backfill.add_argument("--model", required=True, help="a registry model version, or 'base'")
    backfill.add_argument("--generation", default=None, help="its name (default: the model's)")
    backfill.add_argument(
        "--bootstrap", default=None, help="Kafka host:port (default: the stack's)"
    )
    backfill.add_argument(
        "--until-idle", type=float, default=None, metavar="SECONDS", help="stop once idle this long"
    )
    backfill.set_defaults(run=run_backfill)

    traffic = commands.add_parser("traffic", help="show or change which generation answers")
    traffic.add_argument("--url", default=None, help="API base URL (default: the running stack's)")
    actions = traffic.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="the policy in force and what each generation answered")
    change = actions.add_parser("set", help="a new policy (the previous one is kept for rollback)")
    change.add_argument("--primary", required=True, help="the generation that answers")
    change.add_argument("--canary", default=None, help="a generation that answers a share")
    change.add_argument("--percent", type=float, default=0.0, help="the canary's share (0-100)")
    change.add_argument("--shadow", default=None, help="a generation scored, never served")
    change.add_argument("--fallback", default=None, help="answers when the top score is low")
    bar = change.add_mutually_exclusive_group()
    bar.add_argument("--below", type=float, default=0.0, help="the fallback's fixed score bar")
    bar.add_argument(
        "--fallback-share",
        type=float,
        default=0.0,
        metavar="S",
        help="the fallback answers about this share (0-1) of the primary's queries, those with "
        "its lowest top scores; the bar follows the traffic",
    )
    actions.add_parser("rollback", help="back to the previous policy")
    traffic.set_defaults(run=run_traffic)


def run_backfill(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from jobs.backfill import Backfill

    cfg = cfg.with_value("broker.bootstrap", resolved_bootstrap(cfg, args.bootstrap))
    connect_ray(cfg)
    job = Backfill(cfg, args.model, args.generation, idle_stop_s=args.until_idle)
    print(f"backfilling generation {job.generation} with model {args.model} (Ctrl-C stops)")
    bar = Progress(f"{job.generation}: pins embedded", None, sys.stdout)

    def progress(stats: Any) -> None:
        bar.update(stats.embedded)

    try:
        with quiet_terminal(not args.verbose):
            stats = job.run(progress, every_s=0.5)
    except KeyboardInterrupt:
        job.stop()
        return 0
    bar.finish(stats.embedded)
    print(
        f"  {stats.embedded} embedded, {stats.deletes} deletes, {stats.dead_letters} dead "
        f"letters, committed {stats.committed}"
    )
    print(f"generation {job.generation} is warm; `pinstream traffic set ...` routes queries to it")
    return 0


def run_traffic(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    store = TrafficStore(cfg)
    url = args.url or running_state(cfg)["url"]
    if args.action == "set":
        policy = TrafficPolicy(
            primary=args.primary,
            canary=args.canary,
            canary_percent=args.percent,
            shadow=args.shadow,
            fallback=args.fallback,
            fallback_below=args.below,
            fallback_share=args.fallback_share,
        )
        _check_warm(cfg, policy)
        store.set(policy)
        _await_adoption(url, policy, cfg.serve.traffic_poll_s)
    elif args.action == "rollback":
        policy = store.rollback()
        _await_adoption(url, policy, cfg.serve.traffic_poll_s)
    body = requests.get(f"{url}/v1/generations", timeout=10).json()
    print(json.dumps(body, indent=2))
    return 0


def _check_warm(cfg: PinstreamConfig, policy: TrafficPolicy) -> None:
    """Refuse a policy that names a generation no Serve application runs."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    connect_ray(cfg)
    applications = serve.status().applications
    for generation in policy.generations:
        if generation == cfg.model.generation:
            continue
        app = applications.get(generation_app_name(cfg.serve.app_name, generation))
        if app is None or app.status != ApplicationStatus.RUNNING:
            raise PinstreamError(
                f"generation {generation!r} is not running"
                f"{'' if app is None else f' ({app.status.value})'}: start it with "
                f"`pinstream backfill --model ...` first"
            )


def _await_adoption(url: str, policy: TrafficPolicy, poll_s: float) -> None:
    """Wait until the ingress answers with the new policy in force, in every answer for two
    of its poll periods: Serve spreads the answers over the ingress replicas, and each
    re-reads the policy on its own every `poll_s` (`serve.traffic_poll_s`)."""
    wanted = policy.summary()
    deadline = time.monotonic() + ADOPTION_TIMEOUT_S
    adopted_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if requests.get(f"{url}/v1/generations", timeout=10).json()["traffic"] != wanted:
            adopted_since = None
        elif adopted_since is None:
            adopted_since = now
        elif now - adopted_since >= 2 * poll_s:
            return
        time.sleep(0.1)
    raise PinstreamError(f"the ingress did not adopt {policy} in {ADOPTION_TIMEOUT_S:.0f}s")
