"""Bytes a FAISS index needs, derived from its index-factory string (arithmetic, not measured).

Covers the specs a pinstream shard can use: an optional `OPQ{M}[_{D}]` rotation, an
optional `IVF{nlist}` coarse quantizer, and one codec: `Flat`, `PQ{M}[x{nbits}]`,
`PQ{M}[x{nbits}]np` (the same codes, trained without polysemous training), `PQ{M}[x4]fs`
(fast scan), `SQ4`, `SQ6`, `SQ8`, `SQfp16`, `SQbf16`. Every vector
also carries its 8-byte id (inverted lists store ids; a flat index needs an id map).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cluster.exceptions import PlanError

ID_BYTES = 8
FLOAT_BYTES = 4
# ArrayInvertedLists keeps two std::vector per list (codes and ids): 2 x 24 bytes.
LIST_HEADER_BYTES = 48
# IndexIVFPQ precomputes its L2 residual tables only up to this size (faiss default).
PRECOMPUTED_TABLE_MAX_BYTES = 1 << 31
# Fast-scan lists are packed in blocks of 32 codes: on average half a block is padding.
FAST_SCAN_BLOCK = 32

SUPPORTED = (
    "[OPQ{M}[_{D}],][IVF{nlist},]Flat|PQ{M}[x{nbits}][np]|PQ{M}[x4]fs[r]|SQ4|SQ6|SQ8|SQfp16|SQbf16"
)
_OPQ = re.compile(r"OPQ(\d+)(?:_(\d+))?")
_IVF = re.compile(r"IVF(\d+)")
_PQ = re.compile(r"PQ(\d+)(?:x(\d+))?(fsr|fs|np)?")
_SQ_BITS = {"SQ4": 4, "SQ6": 6, "SQ8": 8, "SQfp16": 16, "SQbf16": 16}


@dataclass(frozen=True)
class IndexMemory:
    """Per-vector and per-index bytes of one index spec, with the terms that make them up."""

    spec: str
    dim: int
    nlist: int  # inverted lists; 0 = no IVF, every search scans every code
    encoding: str  # the code without the IVF part, normalised: "PQ32x8", "OPQ32_384,PQ32x8", "Flat"
    code_bytes: int
    fixed_bytes: int
    vector_terms: tuple[str, ...]
    fixed_terms: tuple[str, ...]

    @property
    def bytes_per_vector(self) -> int:
        """Code plus id."""
        return self.code_bytes + ID_BYTES

    def bytes_for(self, vectors: int) -> int:
        """Bytes of one index holding `vectors` vectors (no allocation slack)."""
        return self.fixed_bytes + vectors * self.bytes_per_vector

    def codes_scanned(self, vectors: int, nprobe: int) -> float:
        """Codes one search compares with the query: nprobe of nlist lists, or all of them."""
        if not self.nlist:
            return float(vectors)
        return vectors * min(nprobe, self.nlist) / self.nlist


def index_memory(spec: str, dim: int, metric: str = "ip") -> IndexMemory:
    """Derive the memory layout of `spec` for `dim`-dimensional vectors under `metric`."""
    if dim < 1:
        raise PlanError(f"dim must be >= 1, got {dim}")
    if metric not in ("ip", "l2"):
        raise PlanError(f"metric must be 'ip' or 'l2', got {metric!r}")
    parts = [p.strip() for p in spec.split(",")]
    fixed: list[tuple[int, str]] = []
    d = dim
    rotation = ""
    if parts and (opq := _OPQ.fullmatch(parts[0])):
        parts.pop(0)
        d_out = int(opq.group(2) or dim)
        rotation = f"OPQ{opq.group(1)}_{d_out},"
        if d_out < 1 or d_out > dim:
            raise PlanError(f"{spec!r}: OPQ output dim {d_out} must be in 1..{dim}")
        fixed.append((dim * d_out * FLOAT_BYTES, f"OPQ matrix {dim} x {d_out} x 4 B"))
        d = d_out
    nlist = 0
    if parts and (ivf := _IVF.fullmatch(parts[0])):
        parts.pop(0)
        nlist = int(ivf.group(1))
        if nlist < 1:
            raise PlanError(f"{spec!r}: IVF needs at least one list")
        fixed.append((nlist * d * FLOAT_BYTES, f"coarse centroids {nlist} x {d} x 4 B"))
        fixed.append((nlist * LIST_HEADER_BYTES, f"list headers {nlist} x {LIST_HEADER_BYTES} B"))
    if len(parts) != 1 or not parts[0]:
        raise PlanError(f"index spec {spec!r} is not one the planner can size ({SUPPORTED})")
    code_bytes, code_term, codec_fixed, encoding = _codec(parts[0], d, nlist, metric, spec)
    fixed.extend(codec_fixed)
    return IndexMemory(
        spec=spec,
        dim=dim,
        nlist=nlist,
        encoding=rotation + encoding,
        code_bytes=code_bytes,
        fixed_bytes=sum(b for b, _ in fixed),
        vector_terms=(code_term, f"id {ID_BYTES} B"),
        fixed_terms=tuple(term for _, term in fixed),
    )


def _codec(
    codec: str, d: int, nlist: int, metric: str, spec: str
) -> tuple[int, str, list[tuple[int, str]], str]:
    """Code bytes per vector, its description, the codec's fixed terms, its normalised name."""
    if codec == "Flat":
        return d * FLOAT_BYTES, f"float32 vector {d} x 4 B", [], codec
    if codec in _SQ_BITS:
        bits = _SQ_BITS[codec]
        trained = [] if bits == 16 else [(2 * d * FLOAT_BYTES, f"{codec} ranges 2 x {d} x 4 B")]
        return math.ceil(d * bits / 8), f"{codec} code {d} x {bits} bit", trained, codec
    pq = _PQ.fullmatch(codec)
    if pq is None:
        raise PlanError(f"index spec {spec!r} is not one the planner can size ({SUPPORTED})")
    m, fast_scan = int(pq.group(1)), pq.group(3) in ("fs", "fsr")
    nbits = int(pq.group(2) or (4 if fast_scan else 8))
    if m < 1 or d % m:
        raise PlanError(f"{spec!r}: PQ{m} needs a dimension divisible by {m}, got {d}")
    if fast_scan and nbits != 4:
        raise PlanError(f"{spec!r}: fast-scan PQ uses 4-bit codes, got x{nbits}")
    if not 1 <= nbits <= 16:
        raise PlanError(f"{spec!r}: PQ nbits must be 1..16, got {nbits}")
    code = math.ceil(m * nbits / 8)
    ksub = 1 << nbits
    fixed = [(ksub * d * FLOAT_BYTES, f"PQ codebooks {ksub} x {d} x 4 B")]
    if fast_scan and nlist:
        padding = nlist * (FAST_SCAN_BLOCK // 2) * code
        fixed.append(
            (padding, f"fast-scan block padding {nlist} x {FAST_SCAN_BLOCK // 2} x {code} B")
        )
    table = nlist * m * ksub * FLOAT_BYTES
    if nlist and not fast_scan and metric == "l2" and table <= PRECOMPUTED_TABLE_MAX_BYTES:
        # faiss allocates the table in an AlignedTable, whose capacity is a power of two.
        allocated = (1 << (nlist * m * ksub - 1).bit_length()) * FLOAT_BYTES
        fixed.append((allocated, f"L2 precomputed tables {nlist} x {m} x {ksub} x 4 B"))
    name = f"PQ{m}x{nbits}" + ("fs" if fast_scan else "")
    return code, f"PQ{m}x{nbits} code {code} B", fixed, name
