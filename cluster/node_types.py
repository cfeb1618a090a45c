"""The node types pinstream runs on, read from the Ray cluster launcher config.

`cluster/launcher/aws.yaml` states each node type's Ray resources (CPU, GPU,
memory) explicitly; the KubeRay groups use the same names and sizes (a test checks
that), so the capacity planner counts nodes of these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.exceptions import ClusterError

LAUNCHER_CONFIG = Path(__file__).parent / "launcher" / "aws.yaml"
HEAD = "head"
CPU_WORKER = "cpu-worker"
GPU_WORKER = "gpu-worker"
GIB = 1 << 30
_ACCELERATOR = "accelerator_type:"


@dataclass(frozen=True)
class NodeType:
    """One node type: its instance type and the Ray resources it offers."""

    name: str
    instance_type: str
    cpus: int
    gpus: int
    memory_bytes: int
    accelerator: str | None
    min_workers: int
    max_workers: int

    def describe(self) -> str:
        """`r6i.16xlarge: 60 CPU, 448 GiB`, with the GPUs where there are some."""
        parts = [f"{self.cpus} CPU"]
        if self.gpus:
            parts.append(f"{self.gpus} x {self.accelerator or 'GPU'}")
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / GIB:g} GiB")
        return f"{self.instance_type}: {', '.join(parts)}"


def format_bytes(n: float) -> str:
    """`60.6 GiB`; MiB below one GiB, TiB from one TiB, PiB from one PiB."""
    for unit, size in (("PiB", GIB << 20), ("TiB", GIB << 10), ("GiB", GIB)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / (1 << 20):,.1f} MiB"


def load_launcher_config(
    path: Path = LAUNCHER_CONFIG, what: str = "launcher config"
) -> dict[str, Any]:
    """The launcher config (or another deployment file: `what`) as a mapping."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(f"cannot read the {what} {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ClusterError(f"{path}: expected a mapping")
    return config


def node_types(path: Path = LAUNCHER_CONFIG) -> dict[str, NodeType]:
    """The launcher config's node types by name; head, cpu-worker and gpu-worker must exist."""
    config = load_launcher_config(path)
    types = {}
    for name, spec in (config.get("available_node_types") or {}).items():
        resources = spec.get("resources") or {}
        accelerators = [
            k.removeprefix(_ACCELERATOR) for k in resources if k.startswith(_ACCELERATOR)
        ]
        types[name] = NodeType(
            name=name,
            instance_type=str(spec.get("node_config", {}).get("InstanceType", "?")),
            cpus=int(resources.get("CPU", 0)),
            gpus=int(resources.get("GPU", 0)),
            memory_bytes=int(resources.get("memory", 0)),
            accelerator=accelerators[0] if accelerators else None,
            min_workers=int(spec.get("min_workers", 0)),
            max_workers=int(spec.get("max_workers", 0)),
        )
    absent = [name for name in (HEAD, CPU_WORKER, GPU_WORKER) if name not in types]
    if absent:
        raise ClusterError(f"{path}: node types {absent} are missing")
    if types[CPU_WORKER].memory_bytes <= 0 or types[GPU_WORKER].gpus <= 0:
        raise ClusterError(f"{path}: cpu-worker needs a memory resource and gpu-worker a GPU")
    return types
