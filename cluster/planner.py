"""Capacity planner: shards, replicas, GPUs and nodes for a corpus, a query rate and an ingest rate.

Throughput figures come only from benchmark results (`cluster/bench_results.py`), taken
from the measured index that stands in for the planned one (`cluster/stand_in.py`);
memory is measured where it can be and otherwise derived from the FAISS index spec
(`cluster/index_memory.py`); node sizes come from the launcher config
(`cluster/node_types.py`). What cannot be computed is printed as unknown, with the
figure that is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cluster.bench_results import BenchFigures, Figure, Missing
from cluster.exceptions import PlanError
from cluster.index_memory import IndexMemory, index_memory
from cluster.node_types import CPU_WORKER, GIB, GPU_WORKER, NodeType, format_bytes
from cluster.stand_in import (
    StandIn,
    describe_scale,
    find_stand_in,
    resident_per_vector,
    search_scale,
)

# Scaling a measured search rate down by more than this (codes compared per search, planned
# over measured) gets a warning: re-run the benchmark nearer the planned size.
MAX_EXTRAPOLATION = 10.0
# A measured recall@10 below this on the benchmark's data gets a warning: the plan's index
# returns too few true neighbours without re-ranking or a finer code.
LOW_RECALL = 0.9


@dataclass(frozen=True)
class PlanTarget:
    """What the plan must carry: corpus size, query rate, ingest rate, vectors and index.

    nprobe: inverted lists a search visits; None searches as the benchmark did.
    """

    pins: int
    qps: float
    ingest_rate: float
    dim: int
    index: str
    metric: str = "ip"
    nprobe: int | None = None

    def __post_init__(self) -> None:
        for name in ("pins", "qps", "ingest_rate", "dim"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise PlanError(f"{name} must be a finite number > 0, got {value}")
        if self.nprobe is not None and self.nprobe < 1:
            raise PlanError(f"nprobe must be >= 1, got {self.nprobe}")


@dataclass(frozen=True)
class Assumptions:
    """The planner's own choices; printed with every plan so a reader can dispute them."""

    replica_memory_gib: float = 64.0
    memory_headroom: float = 0.3
    utilization: float = 0.6
    min_replicas_per_shard: int = 2
    text_query_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.replica_memory_gib <= 0:
            raise PlanError(f"replica memory must be > 0 GiB, got {self.replica_memory_gib}")
        if self.memory_headroom < 0:
            raise PlanError(f"memory headroom must be >= 0, got {self.memory_headroom}")
        if not 0 < self.utilization <= 1:
            raise PlanError(f"utilization must be in (0, 1], got {self.utilization}")
        if self.min_replicas_per_shard < 1:
            raise PlanError("min replicas per shard must be >= 1")
        if not 0 <= self.text_query_fraction <= 1:
            raise PlanError("text query fraction must be in [0, 1]")

    def lines(self) -> list[str]:
        """One sentence per assumption."""
        return [
            f"a shard replica holds at most {self.replica_memory_gib:g} GiB (the `memory` its "
            "Serve deployment reserves in cluster/kuberay/rayservice.yaml)",
            f"memory headroom {self.memory_headroom:.0%} over index bytes: inverted lists grow "
            "by doubling, deletes wait for compaction, the growing segment is exact",
            f"replicas and GPUs run at <= {self.utilization:.0%} of their measured peak, "
            "which keeps queues (and p99) short and leaves room to catch up after a backlog",
            f"at least {self.min_replicas_per_shard} replicas per shard, so one can be "
            "replaced while the other serves",
            "every query fans out to every shard (no coarse-centroid routing), so each "
            "shard sees the full query rate",
            f"{self.text_query_fraction:.0%} of queries are text and need the query encoder "
            "(vector and related-pin queries need none)",
            "the ingest rate is the peak to sustain; a backlog drains at the spare capacity",
        ]


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


@dataclass
class Plan:
    """A capacity plan; `cluster/plan_report.py` prints it."""

    target: PlanTarget
    assumptions: Assumptions
    index: IndexMemory
    bytes_per_vector: float
    bytes_basis: str
    replica_memory_bytes: float
    shards: Count
    replicas_per_shard: Count
    ingress_replicas: Count
    encoder_gpus: Count
    ingest_gpus: Count
    nodes: dict[str, Count]
    memory: list[str]
    warnings: list[str] = field(default_factory=list)
    used: list[Figure] = field(default_factory=list)
    # How measured figures were carried over to this plan: printed with the assumptions.
    scaling: list[str] = field(default_factory=list)


def make_plan(
    target: PlanTarget,
    figures: BenchFigures,
    nodes: dict[str, NodeType],
    assumptions: Assumptions | None = None,
) -> Plan:
    """Size the index, the Serve deployments, the GPUs and the nodes for `target`."""
    a = assumptions or Assumptions()
    cpu, gpu = nodes[CPU_WORKER], nodes[GPU_WORKER]
    index = index_memory(target.index, target.dim, target.metric)
    sizer = _Sizer(target, figures, a, gpu, index)

    resident = sizer.stand_in("resident_bytes_per_vector")
    if isinstance(resident, StandIn):
        bytes_per_vector, derivation = resident_per_vector(resident)
        sizer.scaling.append(derivation)
        bytes_basis = (
            f"measured resident bytes per vector of {resident.measured.spec!r} from "
            f"{resident.figure.cite()}, less its fixed bytes"
        )
    else:
        bytes_per_vector = index.bytes_per_vector
        bytes_basis = (
            "index bytes only (derived): "
            + resident.explain("resident bytes per vector")
            + "; the replica's version map and pin metadata are not counted"
        )

    budget = a.replica_memory_gib * GIB
    if budget > cpu.memory_bytes:
        raise PlanError(
            f"a {a.replica_memory_gib:g} GiB shard replica does not fit a {CPU_WORKER} "
            f"({format_bytes(cpu.memory_bytes)} of Ray memory)"
        )
    per_vector = bytes_per_vector * (1 + a.memory_headroom)
    capacity = (budget - index.fixed_bytes) / per_vector
    if capacity < 1:
        fixed = format_bytes(index.fixed_bytes)
        raise PlanError(f"{target.index} needs {fixed} per shard before any vector")
    shard_count = math.ceil(target.pins / capacity)
    vectors_per_shard = math.ceil(target.pins / shard_count)
    replica_memory = index.fixed_bytes + vectors_per_shard * per_vector
    shards = Count(
        shard_count,
        f"{target.pins:,} vectors x {bytes_per_vector:,.0f} B x {1 + a.memory_headroom:g} "
        f"+ {format_bytes(index.fixed_bytes)} fixed per shard, "
        f"<= {a.replica_memory_gib:g} GiB per replica",
    )

    replicas, replica_cpus = sizer.replicas_per_shard(vectors_per_shard)
    ingress, ingress_cpus = sizer.ingress(shard_count)
    encoder_gpus, ingest_gpus = sizer.encoder_gpus(), sizer.ingest_gpus()

    per_node = math.floor(cpu.memory_bytes / replica_memory)
    if replica_cpus is not None:
        per_node = min(per_node, math.floor(cpu.cpus / replica_cpus))
    if per_node < 1:
        raise PlanError(f"one shard replica ({replica_cpus} CPU) does not fit a {CPU_WORKER}")
    nodes_out = {
        "head": Count(2, "one per Ray cluster: the serving RayService and the ingest RayCluster"),
        f"{CPU_WORKER} (serving)": _cpu_nodes(
            shard_count, replicas, replica_cpus, per_node, ingress_cpus, cpu
        ),
        f"{GPU_WORKER} (query encoding)": _gpu_nodes(encoder_gpus, gpu),
        f"{GPU_WORKER} (ingest)": _gpu_nodes(ingest_gpus, gpu),
        f"{CPU_WORKER} (ingest)": Count(
            None, "not sized: no benchmark figure for the Kafka reader and parse stages"
        ),
    }
    memory = [
        f"shard replica: {format_bytes(replica_memory)} = {format_bytes(index.fixed_bytes)} "
        f"fixed + {vectors_per_shard:,} vectors x {per_vector:,.1f} B",
        f"{CPU_WORKER} ({cpu.describe()}): {per_node} shard replicas = "
        f"{format_bytes(per_node * replica_memory)} of {format_bytes(cpu.memory_bytes)}"
        + ("" if replica_cpus is not None else " (memory-bound; CPUs per replica unknown)"),
        f"{GPU_WORKER} ({gpu.describe()}): encoder and embedder replicas; "
        "their memory is not benchmarked",
    ]
    return Plan(
        target=target,
        assumptions=a,
        index=index,
        bytes_per_vector=bytes_per_vector,
        bytes_basis=bytes_basis,
        replica_memory_bytes=replica_memory,
        shards=shards,
        replicas_per_shard=replicas,
        ingress_replicas=ingress,
        encoder_gpus=encoder_gpus,
        ingest_gpus=ingest_gpus,
        nodes=nodes_out,
        memory=memory,
        warnings=sizer.warnings,
        used=sizer.used,
        scaling=sizer.scaling,
    )


@dataclass
class _Sizer:
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

    def replicas_per_shard(self, vectors_per_shard: int) -> tuple[Count, float | None]:
        a, qps = self.a, self.target.qps
        stand = self.stand_in("search_qps_per_replica")
        if isinstance(stand, Missing):
            basis = stand.explain("query QPS per shard replica")
            return Count(a.min_replicas_per_shard, f"availability floor; {basis}", True), None
        found = stand.figure
        scale = search_scale(stand, vectors_per_shard, self.target.nprobe)
        self.scaling.append(describe_scale(stand, scale, vectors_per_shard))
        if stand.planned.nlist and self.target.nprobe is None:
            self.scaling.append(
                f"searches use nprobe {scale.measured_nprobe}, as measured (set --nprobe)"
            )
        if 1 / scale.factor > MAX_EXTRAPOLATION:
            self.warnings.append(
                f"search QPS per replica is scaled down {1 / scale.factor:,.0f}x from the "
                f"{scale.measured_codes:,.0f} codes per query measured to the planned "
                f"{scale.planned_codes:,.0f}: re-run the shard benchmark nearer that size"
            )
        measured, planned = stand.measured.nlist, stand.planned.nlist
        if planned > measured:
            self.warnings.append(
                f"the coarse step of {stand.planned.spec!r} compares each query with "
                f"{planned:,} centroids, {planned / measured:,.0f}x the measured "
                f"{stand.measured.spec!r}, and is not in the scaling: benchmark that nlist"
            )
        recall = found.conditions.get("recall_at_10")
        if isinstance(recall, int | float) and recall < LOW_RECALL:
            self.warnings.append(
                f"{stand.measured.spec!r} reached recall@10 {recall:.3f} with nprobe "
                f"{scale.measured_nprobe} on the benchmark's data: plan re-ranking or a finer "
                "code (docs/scaling.md)"
            )
        count = math.ceil(qps / (found.value * scale.factor * a.utilization))
        threads = float(found.conditions["threads"])
        basis = (
            f"{qps:,.0f} q/s / ({found.value:,.6g} q/s x {scale.factor:.3g} scan scale x "
            f"{a.utilization:g}), {threads:g} CPU each"
        )
        return Count(max(a.min_replicas_per_shard, count), basis), threads

    def ingress(self, shards: int) -> tuple[Count, float | None]:
        found = self.figure("ingress_qps_per_replica")
        if isinstance(found, Missing):
            return Count(None, found.explain("queries/s per ingress replica")), None
        if int(found.conditions["shards"]) < shards:
            self.warnings.append(
                f"ingress QPS was measured fanning out to {found.conditions['shards']} shards; "
                f"the plan has {shards}, and merging costs grow with the shard count"
            )
        count = math.ceil(self.target.qps / (found.value * self.a.utilization))
        cpus = float(found.conditions["num_cpus"])
        basis = (
            f"{self.target.qps:,.0f} q/s / ({found.value:,.6g} q/s x {self.a.utilization:g}), "
            f"{cpus:g} CPU each"
        )
        return Count(count, basis), count * cpus

    def encoder_gpus(self) -> Count:
        found = self.figure("query_encoder_qps_per_gpu")
        if isinstance(found, Missing):
            return Count(None, found.explain("text queries/s per GPU"))
        self.check_gpu(found)
        text_qps = self.target.qps * self.a.text_query_fraction
        count = math.ceil(text_qps / (found.value * self.a.utilization))
        basis = f"{text_qps:,.0f} text q/s / ({found.value:,.6g} q/s x {self.a.utilization:g})"
        return Count(count, basis)

    def ingest_gpus(self) -> Count:
        rate, u = self.target.ingest_rate, self.a.utilization
        embed = self.figure("embed_sentences_per_s_per_gpu")
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
        return Count(count, basis)

    def check_gpu(self, found: Figure) -> None:
        accelerator = self.gpu.accelerator
        if accelerator and found.gpu and accelerator.lower() not in found.gpu.lower():
            self.warnings.append(
                f"{found.key} was measured on {found.gpu}; {GPU_WORKER} nodes have "
                f"{accelerator}: re-run `make bench` on that GPU before buying"
            )


def _cpu_nodes(
    shards: int,
    replicas: Count,
    replica_cpus: float | None,
    per_node: int,
    ingress_cpus: float | None,
    cpu: NodeType,
) -> Count:
    assert replicas.value is not None  # replicas per shard has at least its floor
    total = shards * replicas.value
    count = math.ceil(total / per_node)
    basis = f"{total:,} shard replicas, {per_node} per node"
    at_least = replicas.at_least or replica_cpus is None
    if ingress_cpus is None:
        basis += "; ingress not counted (unknown)"
        at_least = True
    else:
        extra = math.ceil(ingress_cpus / cpu.cpus)
        count += extra
        basis += f"; + {extra} for {ingress_cpus:,.0f} ingress CPUs"
    return Count(count, basis, at_least)


def _gpu_nodes(gpus: Count, gpu: NodeType) -> Count:
    if gpus.value is None:
        return Count(None, "GPUs unknown (above)")
    basis = f"{gpus.show()} GPUs, {gpu.gpus} per node"
    return Count(math.ceil(gpus.value / gpu.gpus), basis, gpus.at_least)
