"""Reading and rewriting the autoscaling bounds of the KubeRay manifests, comments kept.

`pinstream plan --emit kuberay` rewrites numbers in place rather than dumping YAML again:
the manifests are read by people (their comments say why each value is what it is), and
the committed files must be byte for byte what the command emits for the documented
example. Every rewrite is read back through a YAML parser (`read_bounds`), so an edit
that landed anywhere else fails loudly instead of deploying a wrong bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from cluster.exceptions import ClusterError

SHARD = "shard"


@dataclass(frozen=True)
class Bounds:
    """Autoscaling bounds as two manifests state them: the RayService and the ingest RayCluster.

    deployments: Serve deployment (`shard` for every shard-N) -> (min_replicas, max_replicas)
    groups: (cluster, worker group) -> (minReplicas, maxReplicas); cluster is `serving`
        (the RayService's) or `ingest`.
    """

    shards: int
    deployments: dict[str, tuple[int, int]]
    groups: dict[tuple[str, str], tuple[int, int]]


def read_bounds(rayservice: str, ingest: str) -> Bounds:
    """The bounds the two manifests (their text) state."""
    shards, deployments, serving = _read_service(rayservice)
    return Bounds(shards, deployments, {**serving, **_read_cluster(ingest)})


def _read_service(
    text: str,
) -> tuple[int, dict[str, tuple[int, int]], dict[tuple[str, str], tuple[int, int]]]:
    service = _load(text, "RayService")
    try:
        (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
        deployments: dict[str, tuple[int, int]] = {}
        shards = 0
        for d in app["deployments"]:
            name = SHARD if d["name"].startswith("shard-") else d["name"]
            shards += name == SHARD
            scaling = d["autoscaling_config"]
            bound = (int(scaling["min_replicas"]), int(scaling["max_replicas"]))
            if deployments.setdefault(name, bound) != bound:
                raise ClusterError(f"shard deployments scale differently: {d['name']}")
        return shards, deployments, _groups("serving", service["spec"]["rayClusterConfig"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ClusterError(f"cannot read the RayService's autoscaling bounds: {exc!r}") from exc


def _read_cluster(text: str) -> dict[tuple[str, str], tuple[int, int]]:
    try:
        return _groups("ingest", _load(text, "RayCluster")["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ClusterError(f"cannot read the RayCluster's autoscaling bounds: {exc!r}") from exc


def _groups(where: str, spec: Any) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (where, g["groupName"]): (int(g["minReplicas"]), int(g["maxReplicas"]))
        for g in spec["workerGroupSpecs"]
    }


def patch_rayservice(text: str, bounds: Bounds) -> str:
    """The RayService with `bounds`: shard-0..shard-{n-1}, deployment and group bounds."""
    lines = _with_shards(text.splitlines(keepends=True), bounds.shards)
    for name, (low, high) in bounds.deployments.items():
        marker = rf"- name: {'shard-0' if name == SHARD else re.escape(name)}"
        _set(lines, marker, "min_replicas", low)
        _set(lines, marker, "max_replicas", high)
    _set_groups(lines, "serving", bounds)
    return _checked("".join(lines), bounds, "serving")


def patch_ingest(text: str, bounds: Bounds) -> str:
    """The ingest RayCluster with the `ingest` group bounds of `bounds`."""
    lines = text.splitlines(keepends=True)
    _set_groups(lines, "ingest", bounds)
    return _checked("".join(lines), bounds, "ingest")


def _set_groups(lines: list[str], where: str, bounds: Bounds) -> None:
    for (cluster, group), (low, high) in bounds.groups.items():
        if cluster != where:
            continue
        marker = rf"- groupName: {re.escape(group)}"
        # `replicas` is where KubeRay starts a group; the autoscaler moves it from there.
        for key, value in (("replicas", low), ("minReplicas", low), ("maxReplicas", high)):
            _set(lines, marker, key, value)


def _set(lines: list[str], marker: str, key: str, value: int) -> None:
    """Set the first `key:` inside the YAML list item that `marker` starts."""
    start, end = _block(lines, marker)
    pattern = re.compile(rf"^(\s*{key}:\s*)([^\s#]+)(.*)$", re.DOTALL)
    for i in range(start + 1, end):
        found = pattern.match(lines[i])
        if found:
            lines[i] = f"{found.group(1)}{value}{found.group(3)}"
            return
    raise ClusterError(f"no {key} under {marker.replace(chr(92), '')!r} to set")


def _block(lines: list[str], marker: str) -> tuple[int, int]:
    """Line range of the list item that starts with `marker`: up to the next line as shallow."""
    pattern = re.compile(rf"^(\s*){marker}\s*(#.*)?$")
    starts = [(i, m) for i, line in enumerate(lines) if (m := pattern.match(line.rstrip("\n")))]
    if len(starts) != 1:
        raise ClusterError(f"expected one {marker.replace(chr(92), '')!r}, found {len(starts)}")
    start, found = starts[0]
    indent = len(found.group(1))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return start, end


def _with_shards(lines: list[str], shards: int) -> list[str]:
    """One shard-N deployment per shard: shard-1's lines (aliases of shard-0's) repeated."""
    if shards < 1:
        raise ClusterError(f"a plan needs at least one shard, got {shards}")
    start, end = _block(lines, "- name: shard-1")
    template = lines[start:end]
    n = 1
    # the shard-N blocks after shard-0 follow each other: remove them, then write n - 1 anew
    while any(re.match(rf"^\s*- name: shard-{n}\s*$", line) for line in lines):
        s, e = _block(lines, f"- name: shard-{n}")
        del lines[s:e]
        n += 1
    copies = [line.replace("shard-1", f"shard-{k}") for k in range(1, shards) for line in template]
    return lines[:start] + copies + lines[start:]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _load(text: str, kind: str) -> Any:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClusterError(f"the {kind} manifest is not YAML: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise ClusterError(f"expected a {kind} manifest")
    return document


def _checked(text: str, bounds: Bounds, where: str) -> str:
    """`text`, once its bounds read back as set."""
    if where == "serving":
        shards, deployments, groups = _read_service(text)
        if (shards, deployments) != (bounds.shards, bounds.deployments):
            raise ClusterError("the RayService does not read back with the deployments' bounds")
    else:
        groups = _read_cluster(text)
    wanted = {k: v for k, v in bounds.groups.items() if k[0] == where}
    if {k: v for k, v in groups.items() if k in wanted} != wanted:
        raise ClusterError(f"the {where} manifest does not read back with the groups' bounds")
    return text
