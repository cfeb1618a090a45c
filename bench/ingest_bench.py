"""Ingest benchmark: pipeline throughput as a ratio to the raw encoder, and freshness.

    python -m bench.ingest_bench [--count 1500] [--repeats 3] [--out bench/results/ingest.json]

Same model, batch size and machine, in the same run. Two figures, one per regime:
throughput under a backlog (every pin in the topic before the job starts) as a ratio to
the raw encoder, and freshness at half the sustainable rate, from each event's event_time
to the moment a shard replica applies it: percentiles from the Serve replicas' own window
(read through /healthz), and every sample (`series.freshness_s`, plotted by
`python -m bench.report`) from one more replica per shard in this process, the same class
tailing the same log. For each regime it also reports the poll batches the pipeline formed
(`ingest.batch_latency_budget_ms` sizes them: full under the backlog, small at half rate),
and at half rate how much of the freshness the ingest job took (event_time to the driver's
write of the record to the embeddings log); the rest is the log and the replica's tail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import ray
import requests
from ray import serve

from conf.config import PinstreamConfig, load_config
from encoder.embedder import set_torch_threads
from encoder.text_encoder import TextEncoder
from jobs.ingest import IngestJob
from jobs.stack import create_topics
from serve.app import build_app
from serve.freshness import FreshnessTracker
from serve.shard_replica import ShardReplica
from streams.events import now_ms
from streams.local_broker import LocalBroker, free_loopback_port
from streams.pin_text import pin_text
from streams.producer import PinProducer
from streams.synthetic import PinGenerator


def fresh_config(bootstrap: str, port: int = 0) -> PinstreamConfig:
    cfg = (
        load_config()
        .with_value("serve.port", port)
        .with_value("broker.bootstrap", bootstrap)
        .namespaced(f"bench-{uuid.uuid4().hex[:8]}")
    )
    create_topics(cfg)
    return cfg


def raw_encoder_rate(cfg: PinstreamConfig, texts: list[str]) -> float:
    """Sentences/s of the encoder alone, in batches of the pipeline's poll size."""
    set_torch_threads(cfg.model)
    encoder = TextEncoder(cfg.model)
    batch = cfg.ingest.max_poll_records
    encoder.encode(texts[:batch])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoder.encode(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


class WriteLog:
    """Watches an ingest job's writes: when each poll batch was written, its size, and how
    long after its event each record reached the embeddings log."""

    def __init__(self, job: IngestJob) -> None:
        self.stamps: list[tuple[float, int]] = []  # (perf_counter after the write, records)
        self.ingest_s: list[float] = []
        write = job._write

        def timed_write(records, embeddings, dead_letters) -> None:
            write(records, embeddings, dead_letters)
            self.stamps.append((time.perf_counter(), records.num_rows))
            written_ms = now_ms()
            self.ingest_s.extend(
                (written_ms - t) / 1000 for t in records.column("event_time").to_pylist() if t
            )

        job._write = timed_write  # type: ignore[method-assign]

    def batch_sizes(self, max_records: int) -> dict:
        """The poll batches written: how many, their mean and largest size, the share full."""
        sizes = [n for _, n in self.stamps]
        return {
            "batches": len(sizes),
            "mean": round(statistics.fmean(sizes), 2) if sizes else None,
            "p50": statistics.median(sizes) if sizes else None,
            "max": max(sizes, default=None),
            "full_share": round(sum(n >= max_records for n in sizes) / len(sizes), 3)
            if sizes
            else None,
        }


def pipeline_rate(bootstrap: str, count: int) -> tuple[float, dict]:
    """Embedded pins/s of the ingest job under a backlog, steady state (from its first written
    batch to its last), and the batches it formed."""
    cfg = fresh_config(bootstrap)
    with PinProducer(bootstrap, cfg.topics.pins) as producer:
        producer.send_all(p.event for p in PinGenerator(seed=9).pins(count))
    job = IngestJob(cfg, idle_stop_s=2.0)
    writes = WriteLog(job)
    job.run()
    stamps = writes.stamps
    rows_after_first = sum(n for _, n in stamps[1:])
    rate = rows_after_first / (stamps[-1][0] - stamps[0][0])
    return rate, writes.batch_sizes(cfg.ingest.max_poll_records)


class RecordingFreshness(FreshnessTracker):
    """A replica's freshness tracker that also keeps every sample, for the distribution."""

    def __init__(self, shard: int) -> None:
        super().__init__(shard)
        self.every_sample: list[float] = []

    def observe(self, event_times_ms: list[int], now_ms: int) -> None:
        super().observe(event_times_ms, now_ms)
        self.every_sample.extend((now_ms - t) / 1000 for t in event_times_ms if t)


def freshness(bootstrap: str, port: int, rate: float, seconds: float) -> dict:
    """Produce at `rate` pins/s for `seconds` into a running stack; the replicas' percentiles."""
    cfg = fresh_config(bootstrap, port)
    prefix = f"/{cfg.serve.app_name}"
    serve.run(build_app(cfg), name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    url = f"http://127.0.0.1:{cfg.serve.port}{prefix}"
    job = IngestJob(cfg)
    writes = WriteLog(job)
    runner = threading.Thread(target=job.run, daemon=True)
    runner.start()
    generator = PinGenerator(seed=17, id_prefix="fresh")
    total = int(rate * seconds)
    with PinProducer(bootstrap, cfg.topics.pins) as producer:
        warm = generator.pins(1, start=total, event_time=now_ms())[0]
        producer.send(warm.event)
        producer.flush()
        _wait_pins(url, 1)  # pipeline and replicas warm before the clock starts
        probes = [ShardReplica(cfg, shard) for shard in range(cfg.shards.count)]
        trackers = [RecordingFreshness(shard) for shard in range(cfg.shards.count)]
        for probe, tracker in zip(probes, trackers, strict=True):
            probe.freshness = tracker  # after catching up: the warm-up pin is not a sample
        writes.stamps.clear()  # the warm-up pin's batch is not one of the run's
        writes.ingest_s.clear()
        started = time.monotonic()
        for i in range(total):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(generator.pins(1, start=i, event_time=now_ms())[0].event)
            producer.flush()
    _wait_pins(url, total + 1)
    _wait_samples(trackers, total)
    shards = requests.get(f"{url}/healthz", timeout=10).json()["shards"]
    for probe in probes:
        probe.close()
    job.stop()
    runner.join(timeout=30)
    serve.delete(cfg.serve.app_name)
    per_shard = [s["freshness"] for s in shards]
    p50_ingest, p99_ingest = _percentiles(writes.ingest_s)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "pins": total,
        "per_shard": per_shard,
        "p50_s_worst_shard": max(f["p50_s"] for f in per_shard),
        "p99_s_worst_shard": max(f["p99_s"] for f in per_shard),
        "ingest_job_s": {"p50_s": p50_ingest, "p99_s": p99_ingest, "samples": len(writes.ingest_s)},
        "batch_sizes": writes.batch_sizes(cfg.ingest.max_poll_records),
        "samples_s": [round(x, 4) for t in trackers for x in t.every_sample],
    }


def _percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    p50, p99 = np.percentile(np.array(samples), [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def _wait_samples(trackers: list[RecordingFreshness], expected: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(len(t.every_sample) for t in trackers) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the in-process replicas saw fewer than {expected} pins")
        time.sleep(0.1)


def _wait_pins(url: str, expected: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5).json()["pins"] >= expected:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{expected} pins not searchable in {timeout_s}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    base = load_config()
    pins = PinGenerator(seed=9).pins(args.count)
    texts = [
        pin_text(p.event.title, p.event.description, p.event.board, p.event.tags) for p in pins
    ]
    with LocalBroker() as broker:
        ray.init(num_cpus=base.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        port = free_loopback_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            raw = [raw_encoder_rate(base, texts) for _ in range(args.repeats)]
            runs = [pipeline_rate(broker.bootstrap, args.count) for _ in range(args.repeats)]
            pipe = [rate for rate, _ in runs]
            sustainable = statistics.median(pipe)
            fresh = freshness(broker.bootstrap, port, sustainable / 2, args.fresh_seconds)
        finally:
            serve.shutdown()
            ray.shutdown()
    ratio = sustainable / statistics.median(raw)
    samples = fresh.pop("samples_s")
    model = {"model": base.model.name, "batch_size": base.ingest.max_poll_records}
    budget = {
        "max_poll_records": base.ingest.max_poll_records,
        "batch_latency_budget_ms": base.ingest.batch_latency_budget_ms,
    }
    at_rate = {"rate_per_s": fresh["rate_per_s"], "shards": base.shards.count, **budget}
    # Under the backlog, the batches of the run nearest the median; at half rate, the run's.
    sizes = {
        "backlog": min(runs, key=lambda run: abs(run[0] - sustainable))[1],
        "half_rate": fresh["batch_sizes"],
    }
    result = {
        "schema": "pinstream.bench/1",
        "benchmark": "ingest",
        "command": "python -m bench.ingest_bench "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gpu": None},
        "model": base.model.name,
        "batch_size": base.ingest.max_poll_records,
        "raw_encoder_sentences_per_s": {"runs": raw, "median": statistics.median(raw)},
        "pipeline_pins_per_s": {"runs": pipe, "median": sustainable},
        "throughput_ratio_to_raw_encoder": ratio,
        "batch_sizes": {"conditions": budget, **sizes},
        "figures": {
            "throughput_ratio_to_raw_encoder": {
                "value": ratio,
                "unit": "ratio",
                "conditions": model,
            },
            "raw_encoder_sentences_per_s": {
                "value": statistics.median(raw),
                "unit": "sentences/s",
                "conditions": model,
            },
            "pipeline_pins_per_s": {"value": sustainable, "unit": "pins/s", "conditions": model},
            "freshness_p50_s": {
                "value": fresh["p50_s_worst_shard"],
                "unit": "s",
                "conditions": {**at_rate, "of": "worst shard, Serve replicas"},
            },
            "freshness_p99_s": {
                "value": fresh["p99_s_worst_shard"],
                "unit": "s",
                "conditions": {**at_rate, "of": "worst shard, Serve replicas"},
            },
        },
        "freshness_at_half_rate": fresh,
        "series": {
            "freshness_s": {
                "conditions": {
                    **at_rate,
                    "seconds": fresh["seconds"],
                    "of": "every pin, in-process replicas (one per shard)",
                },
                "points": samples,
            }
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    print(
        f"throughput under a backlog: {ratio:.2f} x the raw encoder, batches of "
        f"{sizes['backlog']['mean']} ({sizes['backlog']['full_share']:.0%} full); "
        f"freshness at {fresh['rate_per_s']:.1f} pins/s: p50 {fresh['p50_s_worst_shard']} s, "
        f"p99 {fresh['p99_s_worst_shard']} s, batches of {sizes['half_rate']['mean']}"
    )


if __name__ == "__main__":
    main()
