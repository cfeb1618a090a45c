"""What every benchmark results file starts with: the run header and the machine it ran on.

Imports neither FAISS nor Ray at module level, so a script that must run where one is missing
(bench/gpu_check.py on a lent GPU machine) writes the same header as the other benchmarks.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "pinstream.bench/1"  # read by cluster/results_file.py


def run_header(benchmark: str, argv: list[str] | None, module: str | None = None) -> dict[str, Any]:
    """The fields every result file starts with: schema, benchmark, the command, the date.

    module: the script's module when it is not bench.<benchmark>_bench."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "command": " ".join([f"python -m {module or f'bench.{benchmark}_bench'}", *args]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def machine(gpu: str | None = None) -> dict[str, Any]:
    """The CPU, OS, library versions and GPU (None: none used) of this run."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        import faiss
    except ImportError:
        faiss_version, faiss_threads = None, None
    else:
        faiss_version, faiss_threads = faiss.__version__, faiss.omp_get_max_threads()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "faiss_threads": faiss_threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faiss": faiss_version,
        "numpy": np.__version__,
        "gpu": gpu,
        "load_average_at_start": os.getloadavg(),
    }
