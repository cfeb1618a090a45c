"""Serving benchmark: a closed-loop concurrency sweep over HTTP, against two baselines.

    python -m bench.serving_bench [--pins 2000] [--concurrency 1,2,4,8,16,32]
                                  [--offered 0.25,0.5,0.7,0.9,1.1] [--seconds 3] [--repeats 3]
                                  [--out bench/results/serving.json]

Measured in one run on one machine, medians over `repeats`:
- `serve_vector`, `serve_text`: the pinstream Serve app over HTTP (proxy, ingress,
  query encoder for text, fan-out to every shard, merge);
- `inprocess_vector`, `inprocess_text`: the same encoder and FAISS shard search
  called in-process from the same number of threads (no HTTP, no Ray);
- `serve_batch`: the same vector queries, BATCH_QUERIES per `POST /v1/search/batch`
  request, through the same connection pool; its QPS counts queries, not requests;
- `noop`: a Serve deployment that answers the same request bodies at once (the
  framework's own ceiling on this machine).
Serve's own settings are those of the environment this runs in: the result records every
RAY_SERVE_* variable (e.g. RAY_SERVE_THROUGHPUT_OPTIMIZED=1, RAY_SERVE_ENABLE_HA_PROXY=1).
Then each Serve mode at 70% of its best QPS, paced (open loop), for its tail latency, and
at a sweep of offered rates (fractions of its best QPS, once each): the latency-vs-QPS
series (`series.latency_vs_offered_qps`) that `python -m bench.report` plots.
Pins carry random unit vectors: exact (flat) search costs the same for any values.
The load generator runs in this process: its CPU is counted against every mode alike.
"""

import argparse
import dataclasses
import heapq
import json
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import ray
import requests
from fastapi import FastAPI, Request
from ray import serve

from conf.config import PinstreamConfig, ShardsConfig, load_config
from encoder.embedder import set_torch_threads
from encoder.text_encoder import TextEncoder
from jobs.stack import create_topics
from serve.app import build_app
from serve.data_path import use_serve_environment
from serve.filters import search_state
from shards.shard_state import ShardState
from streams.embeddings_log import EmbeddingsLogWriter, upsert_rows
from streams.local_broker import LocalBroker, free_loopback_port
from streams.routing import shard_of
from streams.synthetic import PinGenerator

K = 10
BATCH_QUERIES = 32  # queries per POST /v1/search/batch in the `serve_batch` mode
SCHEMA = "pinstream.bench/1"  # read by cluster/results_file.py

# No `from __future__ import annotations` here: FastAPI must see NoOp.search's real types.
noop_api = FastAPI()


@serve.ingress(noop_api)
class NoOp:
    """Reads the request body and answers an empty result: Serve's own cost per request."""

    @noop_api.post("/v1/search")
    async def search(self, request: Request) -> dict[str, Any]:
        await request.body()
        return {"results": [], "generation": "noop", "partial": False, "took_ms": 0.0}


@dataclasses.dataclass(frozen=True)
class Run:
    """One measured load level."""

    qps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def measure(call: Callable[[int], None], concurrency: int, seconds: float) -> Run:
    """Closed loop: `concurrency` threads each call back to back for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        i = slot
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                call(i)
            except Exception:
                errors[slot] += 1
                continue
            latencies[slot].append(time.perf_counter() - started)
            i += concurrency

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _run([x for per in latencies for x in per], time.perf_counter() - started, sum(errors))


def measure_paced(call: Callable[[int], None], rate: float, seconds: float, workers: int) -> Run:
    """Open loop at `rate` requests/s; latency counts from each request's scheduled time."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_index = iter(range(total))
    start = time.perf_counter() + 0.1

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                call(i)
            except Exception:
                with lock:
                    errors += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - due)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _run(latencies, time.perf_counter() - start, errors)


def _run(latencies: list[float], elapsed: float, errors: int) -> Run:
    if not latencies:
        return Run(0.0, float("nan"), float("nan"), 0, errors)
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return Run(len(latencies) / elapsed, float(p50), float(p99), len(latencies), errors)


def http_call(url: str, bodies: list[bytes]) -> Callable[[int], None]:
    """POST bodies[i % n] with one keep-alive session per thread; a non-200 is an error."""
    local = threading.local()

    def call(i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(
            url,
            data=bodies[i % len(bodies)],
            headers={"content-type": "application/json"},
            timeout=30,
        )
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")

    return call


def inprocess_call(
    shards: list[ShardState], vectors: np.ndarray | None, encoder: TextEncoder, texts: list[str]
) -> Callable[[int], None]:
    """The app's work without HTTP or Ray: encode (text) then search every shard and merge."""
    local = threading.local()

    def call(i: int) -> None:
        if not getattr(local, "ready", False):
            # OpenMP thread counts are per thread: one FAISS thread, as in a shard replica
            # (where Ray sets OMP_NUM_THREADS=1).
            faiss.omp_set_num_threads(1)
            local.ready = True
        if vectors is not None:
            query = vectors[i % len(vectors)]
        else:
            query = encoder.encode([texts[i % len(texts)]])[0]
        hits = [hit for shard in shards for hit in search_state(shard, query, K)[0]]
        heapq.nlargest(K, hits, key=lambda h: h["score"])

    return call


def sweep(
    name: str, call: Callable[[int], None], levels: list[int], seconds: float, repeats: int
) -> dict[str, Any]:
    """Every concurrency level `repeats` times (levels interleaved); medians per level."""
    measure(call, 2, 1.0)  # warm-up: connections, batches, caches
    runs: dict[int, list[Run]] = {c: [] for c in levels}
    for _ in range(repeats):
        for concurrency in levels:
            runs[concurrency].append(measure(call, concurrency, seconds))
    result = {str(c): _summary(rs) for c, rs in runs.items()}
    failed = sum(level["errors"] for level in result.values())
    if failed:
        raise RuntimeError(f"{name}: {failed} requests failed; the figures would mislead")
    best = max(levels, key=lambda c: result[str(c)]["qps"])
    print(f"{name}: " + ", ".join(f"c={c} {result[str(c)]['qps']:.0f}/s" for c in levels))
    return {"levels": result, "best_concurrency": best, "best_qps": result[str(best)]["qps"]}


def per_query(mode: dict[str, Any], queries_per_request: int) -> dict[str, Any]:
    """A sweep of batch requests restated in queries/s (latencies stay per request)."""
    levels = {
        c: {**level, "qps": level["qps"] * queries_per_request, "requests_per_s": level["qps"]}
        for c, level in mode["levels"].items()
    }
    best = mode["best_concurrency"]
    return {**mode, "levels": levels, "best_qps": levels[str(best)]["qps"]}


def _summary(runs: list[Run]) -> dict[str, Any]:
    return {
        "qps": statistics.median(r.qps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "errors": sum(r.errors for r in runs),
        "runs": [dataclasses.asdict(r) for r in runs],
    }


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def pin_rows(cfg: PinstreamConfig, count: int, vectors: np.ndarray) -> pa.Table:
    pins = PinGenerator(seed=13, id_prefix="bench").pins(count)
    return upsert_rows([p.event for p in pins], vectors, 1, cfg.model.generation)


def shard_states(cfg: PinstreamConfig, rows: pa.Table) -> list[ShardState]:
    """The in-process twin of the app's shards: the same rows, routed the same way."""
    owner = np.array([shard_of(p, cfg.shards.count) for p in rows.column("pin_id").to_pylist()])
    states = []
    for shard in range(cfg.shards.count):
        state = ShardState(ShardsConfig(dim=cfg.shards.dim, metric=cfg.shards.metric))
        state.apply_rows(rows.filter(pa.array(owner == shard)))
        states.append(state)
    return states


def goals(modes: dict[str, Any], paced: dict[str, Any]) -> dict[str, Any]:
    """The issue's three goals, each with the figures it was judged on."""
    vector, noop = modes["serve_vector"], modes["noop"]
    result: dict[str, Any] = {
        "vector_qps_vs_noop": {
            "ratio": vector["best_qps"] / noop["best_qps"],
            "goal": ">= 0.5",
        }
    }
    result["vector_qps_vs_noop"]["met"] = result["vector_qps_vs_noop"]["ratio"] >= 0.5
    result["batch_api_vs_single_queries"] = {
        "batch_qps": modes["serve_batch"]["best_qps"],
        "single_qps": vector["best_qps"],
        "ratio": modes["serve_batch"]["best_qps"] / vector["best_qps"],
        "queries_per_request": BATCH_QUERIES,
    }
    for kind in ("vector", "text"):
        served = modes[f"serve_{kind}"]["levels"]["1"]["p50_ms"]
        local = modes[f"inprocess_{kind}"]["levels"]["1"]["p50_ms"]
        result[f"{kind}_p50_at_c1_minus_inprocess_ms"] = {
            "serve_p50_ms": served,
            "inprocess_p50_ms": local,
            "overhead_ms": served - local,
            "goal": "<= 5",
            "met": served - local <= 5.0,
        }
        run = paced[kind]
        result[f"{kind}_p99_over_p50_at_70pct"] = {
            "rate_per_s": run["rate_per_s"],
            "p50_ms": run["p50_ms"],
            "p99_ms": run["p99_ms"],
            "ratio": run["p99_ms"] / run["p50_ms"],
            "goal": "<= 3",
            "met": run["p99_ms"] <= 3 * run["p50_ms"],
        }
    return result


def figures(
    cfg: PinstreamConfig, pins: int, modes: dict[str, Any], paced: dict[str, Any]
) -> dict[str, Any]:
    """The headline figures: `ingress_qps_per_replica` is the one the capacity planner reads."""
    conditions = {"shards": cfg.shards.count, "pins": pins, "machine_cpus": os.cpu_count()}
    result: dict[str, Any] = {
        "ingress_qps_per_replica": {
            "value": modes["serve_vector"]["best_qps"],
            "unit": "queries/s",
            "conditions": {"num_cpus": cfg.serve.ingress_num_cpus, **conditions},
        },
        "text_qps_best": {
            "value": modes["serve_text"]["best_qps"],
            "unit": "queries/s",
            "conditions": {"model": cfg.model.name, **conditions},
        },
        "noop_qps_best": {
            "value": modes["noop"]["best_qps"],
            "unit": "queries/s",
            "conditions": {"num_cpus": cfg.serve.ingress_num_cpus, **conditions},
        },
    }
    for kind, run in paced.items():
        for quantile in ("p50", "p99"):
            result[f"{kind}_{quantile}_ms_at_70pct"] = {
                "value": run[f"{quantile}_ms"],
                "unit": "ms",
                "conditions": {"rate_per_s": run["rate_per_s"], **conditions},
            }
    return result


def table(modes: dict[str, Any], levels: list[int]) -> str:
    """A markdown table: QPS, p50 and p99 per mode and concurrency."""
    lines = [
        "| mode | " + " | ".join(f"c={c}" for c in levels) + " |",
        "| --- | " + " | ".join("---" for _ in levels) + " |",
    ]
    for name, mode in modes.items():
        cells = [
            f"{mode['levels'][str(c)]['qps']:.0f}/s · {mode['levels'][str(c)]['p50_ms']:.1f} · "
            f"{mode['levels'][str(c)]['p99_ms']:.1f}"
            for c in levels
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n(each cell: QPS · p50 ms · p99 ms, medians)"


@dataclasses.dataclass(frozen=True)
class Workload:
    """The pins and the queries every mode is measured on."""

    rows: pa.Table
    queries: np.ndarray
    texts: list[str]

    def vector_bodies(self) -> list[bytes]:
        return [json.dumps({"vector": q.tolist(), "k": K}).encode() for q in self.queries]

    def text_bodies(self) -> list[bytes]:
        return [json.dumps({"text": t, "k": K}).encode() for t in self.texts]

    def batch_bodies(self) -> list[bytes]:
        """The vector queries, BATCH_QUERIES to a body (each query in one body or another)."""
        queries = [{"vector": q.tolist(), "k": K} for q in self.queries]
        return [
            json.dumps({"queries": queries[first : first + BATCH_QUERIES]}).encode()
            for first in range(0, len(queries) - BATCH_QUERIES + 1, BATCH_QUERIES)
        ]


def bench_config(bootstrap: str) -> PinstreamConfig:
    """The embedded default on `bootstrap`, with topics and an app of its own."""
    cfg = (
        load_config()
        .with_value("broker.bootstrap", bootstrap)
        .namespaced(f"serving-{uuid.uuid4().hex[:8]}")
    )
    create_topics(cfg)
    return cfg


def offered_load(
    name: str, call: Callable[[int], None], best_qps: float, fractions: list[float], seconds: float
) -> list[dict[str, Any]]:
    """Open loop at each fraction of `best_qps`: what was offered, achieved, and the latency."""
    points = []
    for fraction in fractions:
        run = measure_paced(call, fraction * best_qps, seconds, workers=64)
        points.append(
            {
                "mode": name,
                "offered_qps": fraction * best_qps,
                "qps": run.qps,
                "p50_ms": run.p50_ms,
                "p99_ms": run.p99_ms,
                "requests": run.requests,
                "errors": run.errors,
            }
        )
    print(f"{name} offered: " + ", ".join(f"{p['offered_qps']:.0f}/s" for p in points))
    return points


def serve_modes(
    cfg: PinstreamConfig,
    work: Workload,
    levels: list[int],
    seconds: float,
    repeats: int,
    offered: list[float],
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Sweeps of the app (vector, text) and of the no-op deployment, the paced runs at 70% of
    the best QPS, and the offered-load sweep."""
    with EmbeddingsLogWriter(cfg.broker.bootstrap, cfg.topics.embeddings, cfg.shards.count) as w:
        w.write(work.rows)
        w.flush()
    modes: dict[str, Any] = {}
    paced: dict[str, Any] = {}
    sweep_points: list[dict[str, Any]] = []
    use_serve_environment(cfg.serve)  # as the stack starts its Ray
    ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
    port = free_loopback_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        name = cfg.serve.app_name
        serve.run(build_app(cfg), name=name, route_prefix=f"/{name}")  # returns once caught up
        url = f"http://127.0.0.1:{port}/{name}/v1/search"
        calls = {
            "vector": http_call(url, work.vector_bodies()),
            "text": http_call(url, work.text_bodies()),
        }
        for kind, call in calls.items():
            modes[f"serve_{kind}"] = sweep(f"serve_{kind}", call, levels, seconds, repeats)
        batch_call = http_call(f"{url}/batch", work.batch_bodies())
        modes["serve_batch"] = per_query(
            sweep("serve_batch (requests)", batch_call, levels, seconds, repeats), BATCH_QUERIES
        )
        for kind, call in calls.items():
            rate = 0.7 * modes[f"serve_{kind}"]["best_qps"]
            runs = [measure_paced(call, rate, 2 * seconds, workers=64) for _ in range(repeats)]
            paced[kind] = {"rate_per_s": rate, **_summary(runs)}
        for kind, call in calls.items():
            best = modes[f"serve_{kind}"]["best_qps"]
            sweep_points += offered_load(f"serve_{kind}", call, best, offered, seconds)
        serve.delete(name)

        noop = serve.deployment(
            name="noop",
            max_ongoing_requests=cfg.serve.ingress_max_ongoing_requests,
            ray_actor_options={"num_cpus": cfg.serve.ingress_num_cpus},
        )(NoOp)
        serve.run(noop.bind(), name="noop", route_prefix="/noop")
        call = http_call(f"http://127.0.0.1:{port}/noop/v1/search", work.vector_bodies())
        modes["noop"] = sweep("noop", call, levels, seconds, repeats)
    finally:
        serve.shutdown()
        ray.shutdown()
    return modes, paced, sweep_points


def inprocess_modes(
    cfg: PinstreamConfig, work: Workload, levels: list[int], seconds: float, repeats: int
) -> dict[str, Any]:
    """Sweeps of the same encoder and shard search, called from threads in this process."""
    # The query encoder replica's torch threads.
    set_torch_threads(dataclasses.replace(cfg.model, threads=cfg.serve.encoder_threads))
    encoder = TextEncoder(cfg.model)
    shards = shard_states(cfg, work.rows)
    calls = {
        "inprocess_vector": inprocess_call(shards, work.queries, encoder, work.texts),
        "inprocess_text": inprocess_call(shards, None, encoder, work.texts),
    }
    return {name: sweep(name, call, levels, seconds, repeats) for name, call in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pins", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--offered", default="0.25,0.5,0.7,0.9,1.1", help="offered rates, fractions of best QPS"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/serving.json"))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    offered = [float(f) for f in args.offered.split(",")]
    dim = load_config().shards.dim
    with LocalBroker() as broker:
        cfg = bench_config(broker.bootstrap)
        work = Workload(
            rows=pin_rows(cfg, args.pins, random_unit(args.pins, dim, seed=1)),
            queries=random_unit(256, dim, seed=2),
            texts=[text for text, _ in PinGenerator(seed=4).queries(256)],
        )
        modes, paced, sweep_points = serve_modes(
            cfg, work, levels, args.seconds, args.repeats, offered
        )
    modes |= inprocess_modes(cfg, work, levels, args.seconds, args.repeats)
    result = {
        "schema": SCHEMA,
        "benchmark": "serving",
        "command": "python -m bench.serving_bench "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gpu": None},
        "conditions": {
            "pins": args.pins,
            "shards": cfg.shards.count,
            "k": K,
            "seconds_per_level": args.seconds,
            "repeats": args.repeats,
            "ray_num_cpus": cfg.ray.num_cpus,
            "batch_queries_per_request": BATCH_QUERIES,
            "serve_environment": {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE")},
        },
        "load_average": os.getloadavg(),
        "modes": modes,
        "paced_at_70pct_of_best": paced,
        "goals": goals(modes, paced),
        "figures": figures(cfg, args.pins, modes, paced),
        "series": {
            "latency_vs_offered_qps": {
                "conditions": {
                    "pins": args.pins,
                    "shards": cfg.shards.count,
                    "k": K,
                    "seconds_per_level": args.seconds,
                    "fractions_of_best_qps": offered,
                    "ray_num_cpus": cfg.ray.num_cpus,
                },
                "points": sweep_points,
            }
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(modes, levels))
    print(json.dumps(result["goals"], indent=2))


if __name__ == "__main__":
    main()
