"""Capacity planner: shards, replicas, GPUs and nodes for a corpus, a query rate and an ingest rate.

Throughput figures come only from benchmark results (`cluster/sizer.py`); memory is
measured where it can be and otherwise derived from the FAISS index spec
(`cluster/index_memory.py`); node sizes come from the launcher config
(`cluster/node_types.py`), caps from the deployment manifests (`cluster/replica_caps.py`).
Serving is planned twice, side by side: shard replicas on CPU nodes, and on GPUs. What
cannot be computed is printed as unknown, with the figure that is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cluster.bench_results import BenchFigures, Figure, Missing
from cluster.exceptions import PlanError
from cluster.fan_out import FanOut, fan_out
from cluster.index_memory import IndexMemory, index_memory
from cluster.node_types import CPU_WORKER, GIB, GPU_WORKER, NodeType, format_bytes
from cluster.plan_inputs import Assumptions, PlanTarget
from cluster.replica_caps import (
    CPU_NODES,
    ENCODER_REPLICAS,
    GPU_NODES,
    INGEST_GPU_NODES,
    INGRESS_REPLICAS,
    SHARD_REPLICAS,
    SHARDS,
    Cap,
    over_caps,
    replica_caps,
)
from cluster.sizer import Count, Sizer
from cluster.stand_in import StandIn, resident_per_vector

CPU_SERVING, GPU_SERVING = "CPU serving", "GPU serving"
ROUTED = "routed_shards_touched_fraction"

__all__ = ["Assumptions", "Count", "Plan", "PlanTarget", "ServingOption", "make_plan"]


@dataclass(frozen=True)
class ServingOption:
    """Shard replicas on one kind of hardware, and what serving that way costs in total."""

    name: str
    fan_out: FanOut
    shards: Count
    replicas_per_shard: Count
    shard_nodes: Count  # nodes that hold shard replicas
    nodes: Count  # every serving node: shard replicas, ingress, query encoding
    gpus: Count
    ram_bytes: Count  # Ray memory of those nodes
    memory: str  # what one shard replica holds
    over_caps: list[str]


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
    serving: dict[str, ServingOption] = field(default_factory=dict)
    # Caps of the manifests that the plan's ingress, encoders or ingest exceed.
    over_caps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    used: list[Figure] = field(default_factory=list)
    # How measured figures were carried over to this plan: printed with the assumptions.
    scaling: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Shards:
    count: int
    vectors: int
    replica_bytes: float


def make_plan(
    target: PlanTarget,
    figures: BenchFigures,
    nodes: dict[str, NodeType],
    assumptions: Assumptions | None = None,
    caps: list[Cap] | None = None,
) -> Plan:
    """Size the index, the Serve deployments, the GPUs and the nodes for `target`."""
    a = assumptions or Assumptions()
    caps = replica_caps(nodes) if caps is None else caps
    cpu, gpu = nodes[CPU_WORKER], nodes[GPU_WORKER]
    index = index_memory(target.index, target.dim, target.metric)
    sizer = Sizer(target, figures, a, gpu, index)
    bytes_per_vector, bytes_basis = _bytes_per_vector(sizer, index)
    routed = sizer.figure(ROUTED) if target.routing == "centroid" else figures.get(ROUTED)

    budget = a.replica_memory_gib * GIB
    if budget > cpu.memory_bytes:
        raise PlanError(
            f"a {a.replica_memory_gib:g} GiB shard replica does not fit a {CPU_WORKER} "
            f"({format_bytes(cpu.memory_bytes)} of Ray memory)"
        )
    per_vector = bytes_per_vector * (1 + a.memory_headroom)
    shards = _split(target, index, (budget - index.fixed_bytes) / per_vector, per_vector)
    shards_count = Count(
        shards.count,
        f"{target.pins:,} vectors x {bytes_per_vector:,.0f} B x {1 + a.memory_headroom:g} "
        f"+ {format_bytes(index.fixed_bytes)} fixed per shard, "
        f"<= {a.replica_memory_gib:g} GiB per replica",
    )
    cpu_fan, fan_warnings = fan_out(target.routing, shards.count, routed)
    sizer.warnings += fan_warnings
    replicas, replica_cpus = sizer.replicas_per_shard(
        shards.vectors, cpu_fan.queries_per_shard(target.qps)
    )
    ingress, ingress_cpus = sizer.ingress(math.ceil(shards.count * cpu_fan.fraction))
    encoder_gpus, ingest_gpus = sizer.encoder_gpus(), sizer.ingest_gpus()

    per_node = math.floor(cpu.memory_bytes / shards.replica_bytes)
    if replica_cpus is not None:
        per_node = min(per_node, math.floor(cpu.cpus / replica_cpus))
    if per_node < 1:
        raise PlanError(f"one shard replica ({replica_cpus} CPU) does not fit a {CPU_WORKER}")
    shard_nodes = _cpu_shard_nodes(shards.count, replicas, replica_cpus, per_node)
    ingress_nodes = (
        Count(None, "ingress CPUs unknown", True)
        if ingress_cpus is None
        else Count(math.ceil(ingress_cpus / cpu.cpus), f"{ingress_cpus:,.0f} ingress CPUs")
    )
    encoder_nodes = _gpu_nodes(encoder_gpus, gpu)
    serving_nodes = _total([("for shard replicas", shard_nodes), ("for ingress", ingress_nodes)])
    nodes_out = {
        "head": Count(2, "one per Ray cluster: the serving RayService and the ingest RayCluster"),
        f"{CPU_WORKER} (serving)": serving_nodes,
        f"{GPU_WORKER} (query encoding)": encoder_nodes,
        f"{GPU_WORKER} (ingest)": _gpu_nodes(ingest_gpus, gpu),
        f"{CPU_WORKER} (ingest)": Count(
            None, "not sized: no benchmark figure for the Kafka reader and parse stages"
        ),
    }
    cpu_option = ServingOption(
        name=CPU_SERVING,
        fan_out=cpu_fan,
        shards=shards_count,
        replicas_per_shard=replicas,
        shard_nodes=shard_nodes,
        nodes=_total(
            [(CPU_WORKER, serving_nodes), (f"{GPU_WORKER} (query encoding)", encoder_nodes)]
        ),
        gpus=encoder_gpus,
        ram_bytes=_ram([(serving_nodes, cpu), (encoder_nodes, gpu)]),
        memory=_replica_line(index, shards, per_vector),
        over_caps=[
            *over_caps(SHARDS, shards.count, caps),
            *over_caps(SHARD_REPLICAS, replicas.value, caps),
            *over_caps(CPU_NODES, serving_nodes.value, caps),
            *over_caps(GPU_NODES, encoder_nodes.value, caps),
        ],
    )
    gpu_option = _gpu_serving(
        target, a, sizer, index, bytes_per_vector, routed, gpu, caps,
        ingress_nodes=ingress_nodes, encoder_gpus=encoder_gpus, cpu=cpu,
        nprobe=_measured_nprobe(sizer.used),
    )  # fmt: skip
    memory = [
        f"shard replica: {cpu_option.memory}",
        f"{CPU_WORKER} ({cpu.describe()}): {per_node} shard replicas = "
        f"{format_bytes(per_node * shards.replica_bytes)} of {format_bytes(cpu.memory_bytes)}"
        + ("" if replica_cpus is not None else " (memory-bound; CPUs per replica unknown)"),
        f"{GPU_WORKER} ({gpu.describe()}): GPU shard replica: {gpu_option.memory}",
    ]
    return Plan(
        target=target,
        assumptions=a,
        index=index,
        bytes_per_vector=bytes_per_vector,
        bytes_basis=bytes_basis,
        replica_memory_bytes=shards.replica_bytes,
        shards=shards_count,
        replicas_per_shard=replicas,
        ingress_replicas=ingress,
        encoder_gpus=encoder_gpus,
        ingest_gpus=ingest_gpus,
        nodes=nodes_out,
        memory=memory,
        serving={CPU_SERVING: cpu_option, GPU_SERVING: gpu_option},
        over_caps=[
            *over_caps(INGRESS_REPLICAS, ingress.value, caps),
            *over_caps(ENCODER_REPLICAS, encoder_gpus.value, caps),
            *over_caps(INGEST_GPU_NODES, nodes_out[f"{GPU_WORKER} (ingest)"].value, caps),
        ],
        warnings=sizer.warnings,
        used=sizer.used,
        scaling=sizer.scaling,
    )


def _bytes_per_vector(sizer: Sizer, index: IndexMemory) -> tuple[float, str]:
    """Bytes a replica keeps per vector: measured where a stand-in was measured."""
    resident = sizer.stand_in("resident_bytes_per_vector")
    if isinstance(resident, StandIn):
        value, derivation = resident_per_vector(resident)
        sizer.scaling.append(derivation)
        return value, (
            f"measured resident bytes per vector of {resident.measured.spec!r} from "
            f"{resident.figure.cite()}, less its fixed bytes"
        )
    return float(index.bytes_per_vector), (
        "index bytes only (derived): "
        + resident.explain("resident bytes per vector")
        + "; the replica's version map and pin metadata are not counted"
    )


def _split(target: PlanTarget, index: IndexMemory, capacity: float, per_vector: float) -> _Shards:
    """Shards of at most `capacity` vectors each."""
    if capacity < 1:
        fixed = format_bytes(index.fixed_bytes)
        raise PlanError(f"{target.index} needs {fixed} per shard before any vector")
    count = math.ceil(target.pins / capacity)
    vectors = math.ceil(target.pins / count)
    return _Shards(count, vectors, index.fixed_bytes + vectors * per_vector)


def _replica_line(index: IndexMemory, shards: _Shards, per_vector: float) -> str:
    return (
        f"{format_bytes(shards.replica_bytes)} = {format_bytes(index.fixed_bytes)} fixed + "
        f"{shards.vectors:,} vectors x {per_vector:,.1f} B"
    )


def _gpu_serving(
    target: PlanTarget,
    a: Assumptions,
    sizer: Sizer,
    index: IndexMemory,
    bytes_per_vector: float,
    routed: Figure | Missing,
    gpu: NodeType,
    caps: list[Cap],
    *,
    ingress_nodes: Count,
    encoder_gpus: Count,
    cpu: NodeType,
    nprobe: int | None,
) -> ServingOption:
    """Shard replicas of one GPU each: the index in GPU memory, bookkeeping in the node's RAM."""
    headroom = 1 + a.memory_headroom
    on_gpu = index.bytes_per_vector * headroom
    capacity = (a.gpu_replica_memory_gib * GIB - index.fixed_bytes) / on_gpu
    # What the replica keeps beside its FAISS index (key table, segment arrays) stays in RAM.
    in_ram = max(0.0, bytes_per_vector - index.bytes_per_vector) * headroom
    if in_ram:
        capacity = min(capacity, gpu.memory_bytes / gpu.gpus / in_ram)
    shards = _split(target, index, capacity, on_gpu)
    shards_count = Count(
        shards.count,
        f"{target.pins:,} vectors x {index.bytes_per_vector} B x {headroom:g} + "
        f"{format_bytes(index.fixed_bytes)} fixed per shard, <= {a.gpu_replica_memory_gib:g} GiB "
        f"of GPU memory per replica" + (f", {in_ram:,.1f} B per vector in RAM" if in_ram else ""),
    )
    fan, warnings = fan_out(target.routing, shards.count, routed)
    sizer.warnings += [w for w in warnings if w not in sizer.warnings]
    replicas = sizer.gpu_replicas_per_shard(
        shards.vectors, fan.queries_per_shard(target.qps), nprobe
    )
    shard_gpus = (
        Count(None, "GPU replicas per shard unknown (above)")
        if replicas.value is None
        else Count(shards.count * replicas.value, f"{shards.count} shards x {replicas.show()}")
    )
    shard_nodes = _gpu_nodes(shard_gpus, gpu)
    encoder_nodes = _gpu_nodes(encoder_gpus, gpu)
    gpu_nodes = _total([("for shard replicas", shard_nodes), ("for query encoding", encoder_nodes)])
    return ServingOption(
        name=GPU_SERVING,
        fan_out=fan,
        shards=shards_count,
        replicas_per_shard=replicas,
        shard_nodes=shard_nodes,
        nodes=_total([(GPU_WORKER, gpu_nodes), (f"{CPU_WORKER} (ingress)", ingress_nodes)]),
        gpus=_total([("for shard replicas", shard_gpus), ("for query encoding", encoder_gpus)]),
        ram_bytes=_ram([(gpu_nodes, gpu), (ingress_nodes, cpu)]),
        memory=_replica_line(index, shards, on_gpu)
        + " on the GPU"
        + (f" + {format_bytes(shards.vectors * in_ram)} in RAM" if in_ram else ""),
        over_caps=[
            *over_caps(SHARDS, shards.count, caps),
            *over_caps(SHARD_REPLICAS, replicas.value, caps),
            *over_caps(GPU_NODES, gpu_nodes.value, caps),
        ],
    )


def _measured_nprobe(used: list[Figure]) -> int | None:
    """The nprobe the CPU search figure was measured with, for a GPU figure that states none."""
    for figure in used:
        if "search_qps_per_replica" in figure.key and "nprobe" in figure.conditions:
            return int(figure.conditions["nprobe"])
    return None


def _cpu_shard_nodes(
    shards: int, replicas: Count, replica_cpus: float | None, per_node: int
) -> Count:
    assert replicas.value is not None  # replicas per shard has at least its floor
    total = shards * replicas.value
    basis = f"{total:,} shard replicas, {per_node} per node"
    at_least = replicas.at_least or replica_cpus is None
    return Count(math.ceil(total / per_node), basis, at_least)


def _gpu_nodes(gpus: Count, gpu: NodeType) -> Count:
    if gpus.value is None:
        return Count(None, "GPUs unknown (above)")
    basis = f"{gpus.show()} GPUs, {gpu.gpus} per node"
    return Count(math.ceil(gpus.value / gpu.gpus), basis, gpus.at_least)


def _total(parts: list[tuple[str, Count]], unit: str = "") -> Count:
    """The sum of the known parts: a lower bound when one is unknown or a lower bound."""
    known = [(label, p) for label, p in parts if p.value is not None]
    total = sum(p.value for _, p in known if p.value is not None)
    shown = [f"{_amount(p, unit)} {label}" for label, p in known]
    unknown = [label for label, p in parts if p.value is None]
    basis = " + ".join(shown)
    if unknown:
        basis += ("; " if basis else "") + f"unknown: {', '.join(unknown)}"
    at_least = bool(unknown) or any(p.at_least for _, p in known)
    return Count(total if known else None, basis, at_least)


def _amount(count: Count, unit: str) -> str:
    return count.show_bytes() if unit == "bytes" else count.show()


def _ram(nodes: list[tuple[Count, NodeType]]) -> Count:
    """Ray memory of the nodes counted."""
    parts = []
    for count, node in nodes:
        ram = None if count.value is None else count.value * node.memory_bytes
        label = f"on {count.show()} {node.name} x {format_bytes(node.memory_bytes)}"
        parts.append((label if ram is not None else node.name, Count(ram, "", count.at_least)))
    return _total(parts, "bytes")
