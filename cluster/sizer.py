"""Turning benchmark figures into counts (replicas, GPUs), noting the figures used and warnings.

Throughput figures come only from benchmark results (`cluster/bench_results.py`), taken
from the measured index that stands in for the planned one (`cluster/stand_in.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cluster.bench_results import BenchFigures, Figure, Missing
from cluster.index_memory import IndexMemory
from cluster.node_types import GPU_WORKER, NodeType, format_bytes
from cluster.plan_inputs import LOW_RECALL, Assumptions, PlanTarget
from cluster.stand_in import SearchScale, StandIn, describe_scale, find_stand_in, search_scale

# Scaling a measured search rate down by more than this (codes compared per search, planned
# over measured) gets a warning: re-run the benchmark nearer the planned size.
MAX_EXTRAPOLATION = 10.0
RAW_ENCODER = "gpu_encoder_sentences_per_s"


@dataclass(frozen=True)
class Count:
    """A number the plan computed (maybe only a lower bound, or unknown) and how."""

    value: int | None
    basis: str
    at_least: bool = False

    def show(self) -> str:
        """`12`, `>= 12` or `unknown`."""
        if self.value is None:
            return "unknown"
        return f">= {self.value:,}" if self.at_least else f"{self.value:,}"

    def show_bytes(self) -> str:
        """A count of bytes: `60.6 GiB`, `>= 1.2 PiB` or `unknown`."""
        if self.value is None:
            return "unknown"
        return (">= " if self.at_least else "") + format_bytes(self.value)


@dataclass
class Sizer:
    """Turns benchmark figures into counts, noting the figures it used and its warnings."""

    target: PlanTarget
    figures: BenchFigures
    a: Assumptions
    gpu: NodeType
    index: IndexMemory
    warnings: list[str] = field(default_factory=list)
    used: list[Figure] = field(default_factory=list)
    scaling: list[str] = field(default_factory=list)

    def figure(self, key: str) -> Figure | Missing:
        """The primary measurement of `key`, noted as used."""
        found = self.figures.get(key)
        if isinstance(found, Figure):
            self.used.append(found)
        return found

    def stand_in(self, key: str) -> StandIn | Missing:
        """The measurement of `key` that stands in for the plan's index, noted as used."""
        found = self.figures.get(key)
        if isinstance(found, Missing):
            return found
        stand = find_stand_in(self.figures.candidates(key), self.index)
        if isinstance(stand, str):
            return Missing(key, stand)
        self.used.append(stand.figure)
        self.scaling.append(stand.describe())
        return stand

    def search_rate(self) -> tuple[StandIn | Missing, str]:
        """The CPU replica's search measurement: batched where measured, and which it is."""
        batched = self.stand_in("batched_search_qps_per_replica")
        if isinstance(batched, StandIn):
            batch = batched.figure.conditions["batch"]
            return batched, (
                f"batched rate ({batch} queries per call): a loaded replica searches the "
                "queries waiting for it as one FAISS call"
            )
        single = self.stand_in("search_qps_per_replica")
        why = batched.explain("batched search QPS per replica")
        return single, f"one-query-per-call rate, a lower bound: {why}"

    def replicas_per_shard(
        self, vectors_per_shard: int, queries_per_shard: float
    ) -> tuple[Count, float | None]:
        """CPU replicas per shard for `queries_per_shard`, and the CPUs of one replica."""
        a = self.a
        stand, which = self.search_rate()
        if isinstance(stand, Missing):
            basis = stand.explain("query QPS per shard replica")
            return Count(a.min_replicas_per_shard, f"availability floor; {basis}", True), None
        self.scaling.append(f"per-replica search QPS: the {which}")
        found = stand.figure
        scale = self._scale(stand, vectors_per_shard, self.target.nprobe)
        count = math.ceil(queries_per_shard / (found.value * scale.factor * a.utilization))
        threads = float(found.conditions["threads"])
        rate = "batched" if found.key == "batched_search_qps_per_replica" else "one per call"
        basis = (
            f"{queries_per_shard:,.0f} q/s per shard / ({found.value:,.6g} q/s {rate} x "
            f"{scale.factor:.3g} scan scale x {a.utilization:g}), {threads:g} CPU each"
        )
        return Count(max(a.min_replicas_per_shard, count), basis), threads

    def gpu_replicas_per_shard(
        self, vectors_per_shard: int, queries_per_shard: float, nprobe: int | None
    ) -> Count:
        """GPU replicas (one GPU each) per shard for `queries_per_shard`."""
        stand = self.stand_in("gpu_search_qps")
        if isinstance(stand, Missing):
            return Count(None, "GPU serving unmeasured: " + stand.explain("GPU search QPS"))
        found = stand.figure
        self.check_gpu(found)
        if stand.planned.nlist and "nprobe" not in found.conditions:
            self.scaling.append(f"{found.key} states no nprobe: taken as the plan's ({nprobe})")
        scale = self._scale(stand, vectors_per_shard, self.target.nprobe or nprobe)
        u = self.a.utilization
        count = math.ceil(queries_per_shard / (found.value * scale.factor * u))
        basis = (
            f"{queries_per_shard:,.0f} q/s per shard / ({found.value:,.6g} q/s per GPU at batch "
            f"{found.conditions['batch']} x {scale.factor:.3g} scan scale x {u:g}), 1 GPU each"
        )
        return Count(max(self.a.min_replicas_per_shard, count), basis)

    def _scale(self, stand: StandIn, vectors_per_shard: int, nprobe: int | None) -> SearchScale:
        """The search-rate scaling for `stand`, stated, with its warnings."""
        found = stand.figure
        scale = search_scale(stand, vectors_per_shard, nprobe)
        self.scaling.append(describe_scale(stand, scale, vectors_per_shard))
        if stand.planned.nlist and nprobe is None:
            self.scaling.append(
                f"searches use nprobe {scale.measured_nprobe}, as measured (set --nprobe)"
            )
        if 1 / scale.factor > MAX_EXTRAPOLATION:
            self.warnings.append(
                f"{found.key} is scaled down {1 / scale.factor:,.0f}x from the "
                f"{scale.measured_codes:,.0f} codes per query measured to the planned "
                f"{scale.planned_codes:,.0f}: re-run the benchmark nearer that size"
            )
        measured, planned = stand.measured.nlist, stand.planned.nlist
        if planned > measured:
            self.warnings.append(
                f"the coarse step of {stand.planned.spec!r} compares each query with "
                f"{planned:,} centroids, {planned / measured:,.0f}x the measured "
                f"{stand.measured.spec!r} ({found.key}), and is not in the scaling: "
                "benchmark that nlist"
            )
        recall = found.conditions.get("recall_at_10")
        if isinstance(recall, int | float) and recall < LOW_RECALL:
            self.warnings.append(
                f"{stand.measured.spec!r} reached recall@10 {recall:.3f} with nprobe "
                f"{scale.measured_nprobe} on the benchmark's data ({found.key}): plan "
                "re-ranking or a finer code (docs/scaling.md)"
            )
        return scale

    def ingress(self, shards_touched: int) -> tuple[Count, float | None]:
        """Ingress replicas, and the CPUs they take."""
        found = self.figure("ingress_qps_per_replica")
        if isinstance(found, Missing):
            return Count(None, found.explain("queries/s per ingress replica")), None
        if int(found.conditions["shards"]) < shards_touched:
            self.warnings.append(
                f"ingress QPS was measured fanning out to {found.conditions['shards']} shards; "
                f"a query of the plan visits {shards_touched}, and merging costs grow with that"
            )
        count = math.ceil(self.target.qps / (found.value * self.a.utilization))
        cpus = float(found.conditions["num_cpus"])
        basis = (
            f"{self.target.qps:,.0f} q/s / ({found.value:,.6g} q/s x {self.a.utilization:g}), "
            f"{cpus:g} CPU each"
        )
        return Count(count, basis), count * cpus

    def encoder_rate(self, key: str) -> tuple[Figure | Missing, str]:
        """The per-GPU encoder figure `key`, or else the GPU check's raw encoder rate.

        The second part says which was used when it was the raw rate ("" otherwise).
        """
        found = self.figures.get(key)
        if isinstance(found, Figure):
            return self.figure(key), ""
        raw = self.figures.candidates(RAW_ENCODER)
        if not raw:
            also = self.figures.get(RAW_ENCODER)
            reason = found.reason if isinstance(also, Figure) else f"{found.reason}; {also.reason}"
            return Missing(key, reason), ""
        best = max(raw, key=lambda f: f.value)
        self.used.append(best)
        c = best.conditions
        return best, (
            f"at the raw encoder's best rate ({RAW_ENCODER}, {c['dtype']}, batch {c['batch']}), "
            f"so a lower bound: {found.reason}"
        )

    def encoder_gpus(self) -> Count:
        """GPUs for query encoding."""
        found, raw = self.encoder_rate("query_encoder_qps_per_gpu")
        if isinstance(found, Missing):
            return Count(None, found.explain("text queries/s per GPU"))
        self.check_gpu(found)
        text_qps = self.target.qps * self.a.text_query_fraction
        count = math.ceil(text_qps / (found.value * self.a.utilization))
        basis = f"{text_qps:,.0f} text q/s / ({found.value:,.6g} q/s x {self.a.utilization:g})"
        return Count(count, basis + (f"; {raw}" if raw else ""), at_least=bool(raw))

    def ingest_gpus(self) -> Count:
        """GPUs for embedding the ingest stream."""
        rate, u = self.target.ingest_rate, self.a.utilization
        embed, raw = self.encoder_rate("embed_sentences_per_s_per_gpu")
        if isinstance(embed, Missing):
            return Count(None, embed.explain("sentences/s per GPU"))
        self.check_gpu(embed)
        ratio = self.figure("throughput_ratio_to_raw_encoder")
        if isinstance(ratio, Missing):
            basis = (
                f"{rate:,.0f} pins/s / ({embed.value:,.6g} sentences/s x {u:g}) at the raw "
                "encoder's rate; " + ratio.explain("ingest throughput vs raw encoder")
            )
            return Count(math.ceil(rate / (embed.value * u)), basis, at_least=True)
        pipeline = ratio.value
        if pipeline > 1:
            # Measured against a raw encoder that shared the machine with the pipeline's
            # own actors; per GPU the pipeline cannot embed faster than its encoder.
            self.warnings.append(
                f"{ratio.key} = {pipeline:.3g} > 1 ({ratio.cite()}): planned with 1; measure "
                "the raw encoder and the pipeline on the same GPU"
            )
            pipeline = 1.0
        sustained = embed.value * pipeline
        count = math.ceil(rate / (sustained * u))
        hours = self.target.pins / (count * sustained) / 3600
        basis = (
            f"{rate:,.0f} pins/s / ({embed.value:,.6g} sentences/s x {pipeline:.3g} pipeline "
            f"x {u:g}); re-embedding all pins on them takes {hours:,.1f} h"
        )
        return Count(count, basis + (f"; {raw}" if raw else ""), at_least=bool(raw))

    def check_gpu(self, found: Figure) -> None:
        """Warn when a per-GPU figure was measured on another GPU than the gpu-worker's."""
        accelerator = self.gpu.accelerator
        if accelerator and found.gpu and accelerator.lower() not in found.gpu.lower():
            self.warnings.append(
                f"{found.key} was measured on {found.gpu}; {GPU_WORKER} nodes have "
                f"{accelerator}: re-run `make bench` on that GPU before buying"
            )
