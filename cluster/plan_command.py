"""`pinstream plan`: print a capacity plan for a corpus, a query rate and an ingest rate."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from cluster.bench_results import load_figures
from cluster.exceptions import PlanError
from cluster.kuberay_emit import emit_kuberay
from cluster.load_curve import TROUGH_FRACTION
from cluster.node_types import LAUNCHER_CONFIG, node_types
from cluster.plan_inputs import ROUTINGS, PlanRequest
from cluster.plan_report import as_json, render
from cluster.planner import Assumptions, PlanTarget, make_plan
from cluster.replica_caps import KUBERAY
from cluster.replica_resources import PRODUCTION_CONFIG
from cluster.simulation_command import simulated_day
from conf.config import PinstreamConfig, load_config

DEFAULT_RESULTS_DIR = Path("bench/results")


def add_plan_parser(subparsers: Any) -> None:
    """Register the `plan` subcommand on the `pinstream` command's subparsers."""
    plan = subparsers.add_parser(
        "plan",
        help="capacity plan: shards, replicas, GPUs and nodes from `make bench` results",
    )
    plan.add_argument("--pins", type=_count, required=True, help="corpus size, e.g. 10e9")
    plan.add_argument("--qps", type=_rate, required=True, help="peak queries per second")
    plan.add_argument(
        "--ingest-rate", type=_rate, required=True, help="peak new or edited pins per second"
    )
    plan.add_argument("--dim", type=int, default=None, help="vector dimension (default: config)")
    plan.add_argument(
        "--index", default="Flat", help='FAISS index spec of a shard, e.g. "IVF65536,PQ32"'
    )
    plan.add_argument(
        "--nprobe",
        type=_positive_int,
        default=None,
        help="inverted lists a search visits (default: as the shard benchmark measured)",
    )
    plan.add_argument(
        "--routing",
        choices=ROUTINGS,
        default=None,
        help="hash: every query visits every shard; centroid: the owners of its nearest "
        "centroid groups (default: the config's shards.routing, else hash)",
    )
    plan.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help=f"benchmark results (default: {DEFAULT_RESULTS_DIR})",
    )
    plan.add_argument(
        "--replica-memory-gib",
        type=_rate,
        default=Assumptions.replica_memory_gib,
        help="most memory one shard replica may hold (default: %(default)s)",
    )
    plan.add_argument(
        "--gpu-replica-memory-gib",
        type=_rate,
        default=Assumptions.gpu_replica_memory_gib,
        help="most index bytes one GPU shard replica keeps in GPU memory (default: %(default)s)",
    )
    plan.add_argument(
        "--trough",
        type=_fraction,
        default=TROUGH_FRACTION,
        help="the daily trough's load over the peak's: sets the minimum replicas of --emit "
        "(default: %(default).3g, a sine peaking at 1.5x its mean)",
    )
    output = plan.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the plan as JSON")
    output.add_argument(
        "--emit",
        choices=["kuberay"],
        default=None,
        help="kuberay: print the KubeRay manifests (cluster/kuberay/) with the plan's autoscaling "
        "bounds, as one YAML stream for `kubectl apply -f -` (or write them under --out)",
    )
    output.add_argument(
        "--simulate",
        action="store_true",
        help="replay a day (a sine from --trough x the target's rates to the target's) through "
        "the scaling rules and bounds of the manifests; print replicas, nodes, SLO misses per hour",
    )
    plan.add_argument(
        "--out", type=Path, default=None, help="with --emit: write the manifests in this folder"
    )
    plan.add_argument(
        "--manifests",
        type=Path,
        default=KUBERAY,
        help="the KubeRay manifests that --emit rewrites and --simulate replays "
        "(default: cluster/kuberay)",
    )
    plan.set_defaults(run=run_plan)


def run_plan(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    """Print the plan for `args`; the config gives the default dim and the metric."""
    target = PlanTarget(
        pins=args.pins,
        qps=args.qps,
        ingest_rate=args.ingest_rate,
        dim=args.dim or cfg.shards.dim,
        index=args.index,
        metric=cfg.shards.metric,
        nprobe=args.nprobe,
        # shards.routing arrives with centroid-routed shards; a config without it hashes.
        routing=args.routing or getattr(cfg.shards, "routing", "hash"),
    )
    figures = load_figures(args.results_dir)
    nodes = node_types()
    assumptions = Assumptions(
        replica_memory_gib=args.replica_memory_gib,
        gpu_replica_memory_gib=args.gpu_replica_memory_gib,
    )
    if args.out is not None and args.emit is None:
        raise PlanError("--out needs --emit kuberay")
    request = PlanRequest(target, figures, nodes, assumptions)
    if args.emit == "kuberay":
        return _emit(request, args)
    if args.simulate:
        # The manifests mount cluster/pinstream.yaml: its values are the deployed ones.
        production = load_config(PRODUCTION_CONFIG)
        sys.stdout.write(simulated_day(request, production, args.trough, args.manifests))
        return 0
    plan = make_plan(target, figures, nodes, assumptions)
    if args.json:
        sys.stdout.write(json.dumps(as_json(plan, figures), indent=2) + "\n")
        return 0
    launcher = ", ".join(f"{n.name} = {n.describe()}" for n in nodes.values())
    sys.stdout.write(render(plan, figures, f"{_shown(LAUNCHER_CONFIG)} ({launcher})"))
    return 0


def _emit(request: PlanRequest, args: argparse.Namespace) -> int:
    """Emit the manifests; what each bound is and why goes to stderr, beside them."""
    # The manifests mount cluster/pinstream.yaml: its reservations are the ones that count.
    production = load_config(PRODUCTION_CONFIG)
    _, manifests = emit_kuberay(request, production, args.trough, args.manifests)
    sys.stderr.write("\n".join(manifests.notes(production)) + "\n")
    if args.out is None:
        sys.stdout.write(manifests.to_stdout())
    else:
        for path in manifests.write(args.out):
            sys.stderr.write(f"wrote {_shown(path)}\n")
    return 0


def _fraction(text: str) -> float:
    value = _rate(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = _rate(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value
