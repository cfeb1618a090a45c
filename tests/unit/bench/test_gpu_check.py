"""bench/gpu_check.py on the CPU: a --smoke run in a fresh process imports no Ray and writes a
results file with every section, saying what it could not measure here and why."""

import json
import subprocess
import sys
from pathlib import Path

from cluster.results_file import ResultsFile, read_results

ROOT = Path(__file__).resolve().parents[3]
SMOKE = """
import sys
from bench.gpu_check import main
main(["--smoke", "--out", sys.argv[1]])
assert "ray" not in sys.modules, "gpu_check imported ray"
"""


def test_smoke_run_writes_every_section_without_ray(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "-c", SMOKE, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    for section in ("schema", "benchmark", "command", "date", "machine", "figures", "wall_s"):
        assert section in document, section
    assert document["command"].startswith("python -m bench.gpu_check --smoke")
    assert "gpu" in document["machine"]
    assert set(document["figures"]) == {"gpu_encoder_sentences_per_s", "gpu_search_qps"}
    assert document["encoder"]["runs"] and document["search"]["runs"]  # CPU stand-ins ran
    checked = read_results(out)
    assert isinstance(checked, ResultsFile) and not checked.problems
    if document["machine"]["gpu"] is None:
        missing = {entry["what"]: entry["reason"] for entry in document["not_measured"]}
        assert "needs a CUDA device" in missing["encoder bfloat16"]
        assert "sees no GPU" in missing["gpu search"]
        assert not checked.figures  # no CPU stand-in is ever a gpu_* figure
