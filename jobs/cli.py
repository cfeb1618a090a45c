"""The `pinstream` command line: parse, build, run, close."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import requests

from cluster.plan_command import add_plan_parser
from conf.config import PinstreamConfig, load_config
from conf.errors import PinstreamError
from jobs.clip_commands import add_clip_parser
from jobs.console import configure_logging, quiet_terminal
from jobs.generation_commands import add_generation_parsers
from jobs.model_commands import add_model_parsers
from jobs.router_commands import add_router_parsers
from jobs.stack import LocalStack, resolved_bootstrap, running_state
from streams.ingest_health import PoolReport
from streams.producer import PinProducer
from streams.synthetic import PinGenerator


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pinstream` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        cfg = load_config(args.config).with_absolute_paths()  # relative to where it is run
        return int(args.run(cfg, args))
    except PinstreamError as exc:
        print(f"pinstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinstream", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML config (default: conf/local.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(required=True, metavar="command")

    up = commands.add_parser(
        "up", help="run the whole local stack in the foreground (Ctrl-C stops it)"
    )
    up.add_argument("--port", type=int, default=None, help="HTTP port (0 = any free port)")
    up.set_defaults(run=run_up)

    produce = commands.add_parser("produce", help="send synthetic pins to the pins topic")
    produce.add_argument("--count", type=int, required=True)
    produce.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    produce.add_argument("--seed", type=int, default=0)
    produce.add_argument("--start", type=int, default=0, help="index of the first synthetic pin")
    produce.add_argument(
        "--bootstrap", default=None, help="Kafka host:port (default: the running stack's)"
    )
    produce.set_defaults(run=run_produce)

    query = commands.add_parser("query", help="search the running stack by text")
    query.add_argument("text")
    query.add_argument("-k", type=int, default=10)
    query.add_argument("--url", default=None, help="API base URL (default: the running stack's)")
    query.add_argument(
        "--api-key",
        default=os.environ.get("PINSTREAM_API_KEY"),
        help="(default: $PINSTREAM_API_KEY)",
    )
    query.set_defaults(run=run_query)

    ingest = commands.add_parser(
        "ingest", help="run the ingest job (pins -> embeddings log) until stopped"
    )
    ingest.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka host:port (default: config, else the running stack's)",
    )
    ingest.add_argument(
        "--until-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop once the stream is idle this long",
    )
    ingest.set_defaults(run=run_ingest)

    status = commands.add_parser(
        "status", help="shards, freshness and ingest progress of the running stack"
    )
    status.add_argument("--url", default=None, help="API base URL (default: the running stack's)")
    status.add_argument(
        "--bootstrap", default=None, help="Kafka host:port (default: the running stack's)"
    )
    status.set_defaults(run=run_status)

    add_plan_parser(commands)
    add_generation_parsers(commands)
    add_model_parsers(commands)
    add_router_parsers(commands)
    add_clip_parser(commands)

    for name, what in (
        ("seal", "fold each shard's log into a new snapshot, sealing its growing segment"),
        ("compact", "as seal, then merge sealed segments and drop dead vectors"),
    ):
        sealer = commands.add_parser(name, help=what)
        sealer.add_argument(
            "--bootstrap", default=None, help="Kafka host:port (default: the running stack's)"
        )
        sealer.add_argument("--shard", type=int, default=None, help="only this shard")
        sealer.add_argument(
            "--generation", default=None, help="a backfilled generation (default: the config's)"
        )
        sealer.add_argument(
            "--every",
            type=float,
            default=None,
            metavar="SECONDS",
            help="keep running, once every SECONDS (Ctrl-C stops)",
        )
        sealer.set_defaults(run=run_sealer, compact=name == "compact")

    demo = commands.add_parser(
        "demo", help="start the stack, stream pins, query, stop (what `make demo` runs)"
    )
    demo.add_argument("--count", type=int, default=2000)
    demo.add_argument(
        "--images",
        action="store_true",
        help="image pins: a tiny CLIP trained here embeds each pin's picture",
    )
    demo.set_defaults(run=run_demo)
    return parser


def run_up(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    if args.port is not None:
        cfg = cfg.with_value("serve.port", args.port)
    stopped = threading.Event()
    print("starting pinstream (broker, Ray, Serve, ingest) ...", flush=True)
    with quiet_terminal(not args.verbose), LocalStack(cfg) as stack:
        # After ray.init, which installs handlers of its own: SIGTERM and SIGINT both stop
        # the stack in order, so no broker or Ray process outlives it.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: stopped.set())
        print(f"pinstream is up at {stack.url}  (Kafka: {stack.cfg.broker.bootstrap})")
        if stack.restored_pins:
            print(f"  {stack.restored_pins} pins restored from the last run's snapshots")
        print("  pinstream produce --count 1000")
        print(
            f"  curl -s {stack.url}/v1/search -H 'content-type: application/json' "
            """-d '{"text": "mid-century modern walnut coffee table", "k": 5}'"""
        )
        print("Ctrl-C stops everything.", flush=True)
        while not stopped.wait(1.0):
            stack.check_ingest()
        print("stopping ...", flush=True)
    return 0


def run_ingest(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from jobs.ingest import IngestJob
    from jobs.stack import create_topics, start_ray

    cfg = cfg.with_value("broker.bootstrap", resolved_bootstrap(cfg, args.bootstrap))
    create_topics(cfg)
    with quiet_terminal(not args.verbose):
        start_ray(cfg)
        job = IngestJob(cfg, idle_stop_s=args.until_idle)
        signal.signal(signal.SIGTERM, lambda *_: job.stop())
        signal.signal(signal.SIGINT, lambda *_: job.stop())
        print(
            f"ingesting {cfg.topics.pins} -> {cfg.topics.embeddings} on {cfg.broker.bootstrap}",
            flush=True,
        )
        stats = job.run()
    print(f"ingest stopped: {stats}", flush=True)
    return 0


def run_produce(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    if args.count < 0:
        raise PinstreamError("--count must be >= 0")
    bootstrap = resolved_bootstrap(cfg, args.bootstrap)
    pins = PinGenerator(seed=args.seed).pins(args.count, start=args.start)
    with PinProducer(bootstrap, cfg.topics.pins) as producer:
        sent = producer.send_all((p.event for p in pins), rate=args.rate)
    print(f"sent {sent} pins to {cfg.topics.pins} on {bootstrap}")
    return 0


def run_query(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    url = args.url or running_state(cfg)["url"]
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    response = requests.post(
        f"{url}/v1/search", json={"text": args.text, "k": args.k}, headers=headers, timeout=30
    )
    if response.status_code != 200:
        print(f"pinstream: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    body = response.json()
    for rank, hit in enumerate(body["results"], 1):
        print(f"{rank:3d}. {hit['score']:.3f}  {hit['title']}  [{hit['board']}]  {hit['pin_id']}")
    print(
        f"generation {body['generation']}, {body['took_ms']:.1f} ms"
        + (", PARTIAL" if body["partial"] else "")
    )
    return 0


def run_status(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from kafka import TopicPartition

    from streams.kafka_io import assigned_consumer, committed_offsets

    url = args.url or running_state(cfg)["url"]
    health = requests.get(f"{url}/healthz", timeout=10)
    body = health.json()
    print(f"{url}: {body['status']}, {body['pins']} pins, generation {body['generation']}")
    ingest = body.get("ingest")
    if ingest is None:
        print("  ingest: no job has reported under this storage root")
    else:
        why = f": {ingest['reason']}" if ingest["reason"] else ""
        stale = " (no report for a while: is the job gone?)" if ingest["stale"] else ""
        print(
            f"  ingest: {ingest['state']}{why}{stale}; {ingest['events']} events, "
            f"{ingest['dead_letters']} dead letters, {ingest['retries']} retries in a row"
        )
        if ingest.get("pool"):
            for line in PoolReport(**ingest["pool"]).describe():
                print(f"  {line}")
    for shard in body["shards"]:
        fresh = shard["freshness"]
        print(
            f"  shard {shard['shard']}: {shard['pins']} pins, log offset {shard['log_offset']}, "
            f"freshness p50 {fresh['p50_s']}s p99 {fresh['p99_s']}s ({fresh['samples']} samples)"
        )
    if body["missing_shards"]:
        print(f"  missing shards: {body['missing_shards']}")
    bootstrap = resolved_bootstrap(cfg, args.bootstrap)
    committed = committed_offsets(bootstrap, cfg.ingest.consumer_group, cfg.topics.pins)
    with assigned_consumer(bootstrap) as consumer:
        ends = consumer.end_offsets([TopicPartition(cfg.topics.pins, p) for p in committed])
    for tp, end in sorted(ends.items(), key=lambda item: item[0].partition):
        done = committed[tp.partition]
        print(f"  {cfg.topics.pins}[{tp.partition}]: committed {done}, lag >= {max(0, end - done)}")
    print(
        "  (lag comes from the broker's high watermark; the local broker's lags, so it undercounts)"
    )
    return 0 if health.status_code == 200 else 1


def run_sealer(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from jobs.sealer import seal_shard

    cfg = cfg.with_value("broker.bootstrap", resolved_bootstrap(cfg, args.bootstrap))
    if args.generation not in (None, cfg.model.generation):
        cfg = cfg.for_generation(args.generation, cfg.model.name)  # its log, its snapshots
    if args.shard is not None and not 0 <= args.shard < cfg.shards.count:
        raise PinstreamError(f"--shard must be in [0, {cfg.shards.count}), got {args.shard}")
    shards = range(cfg.shards.count) if args.shard is None else [args.shard]
    while True:
        for shard in shards:
            print(json.dumps(seal_shard(cfg, shard, args.compact), default=str), flush=True)
        if args.every is None:
            return 0
        try:
            threading.Event().wait(args.every)
        except KeyboardInterrupt:
            return 0


def run_demo(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from jobs.demo import run_demo_session

    with quiet_terminal(not args.verbose):
        return run_demo_session(cfg, count=args.count, out=sys.stdout, images=args.images)


if __name__ == "__main__":
    sys.exit(main())
