"""Packaging: FAISS comes from exactly one extra, so no install set holds faiss-cpu and faiss-gpu.

Both distributions install the module `faiss`; pip would put one over the other. The sets the
project installs (the Makefile's venv, the cluster image, each with its FAISS choice) are read
from their files, so a change there that drops FAISS or adds a second one fails here.
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAISS_DISTRIBUTIONS = {"faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cuvs"}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def distribution(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name[0]).lower()


def faiss_in(extras: list[str]) -> set[str]:
    """The FAISS distributions that `pip install .[extras]` installs."""
    requirements = list(PROJECT["dependencies"])
    for extra in extras:
        requirements += PROJECT["optional-dependencies"][extra]
    return {distribution(r) for r in requirements} & FAISS_DISTRIBUTIONS


def test_faiss_is_in_exactly_one_extra_per_machine_kind() -> None:
    extras = PROJECT["optional-dependencies"]
    assert faiss_in([]) == set(), "the base dependencies must not pin a FAISS build"
    assert faiss_in(["cpu"]) == {"faiss-cpu"}
    assert faiss_in(["gpu"]) == {"faiss-gpu"}
    for extra in set(extras) - {"cpu", "gpu"}:
        assert faiss_in([extra]) == set(), f"extra {extra} brings a FAISS build"
    versions = {r.split("==")[1] for r in extras["cpu"] + extras["gpu"]}
    assert len(versions) == 1, f"faiss-cpu and faiss-gpu are different releases: {versions}"


@pytest.mark.parametrize("choice", ["cpu", "gpu"])
def test_the_install_sets_of_the_makefile_and_the_image_hold_one_faiss(choice: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dockerfile = (ROOT / "cluster" / "image" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FAISS \?= cpu$", makefile, re.M), "make installs faiss-cpu by default"
    assert re.search(r"^ARG FAISS=cpu$", dockerfile, re.M), "the image's default is faiss-cpu"
    sets = re.findall(r"-e '\.\[([^\]]*)\]'", makefile) + re.findall(
        r'pip install[^\n]*"\.\[([^\]]*)\]"', dockerfile
    )
    assert len(sets) == 2, sets
    for extras in sets:
        chosen = extras.replace("$(FAISS)", choice).replace("${FAISS}", choice).split(",")
        assert faiss_in(chosen) == {f"faiss-{choice}"}, extras


def test_without_faiss_the_import_error_names_the_extras() -> None:
    hide_faiss = "import sys; sys.modules['faiss'] = None; import shards"
    done = subprocess.run(
        [sys.executable, "-c", hide_faiss], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "pinstream[cpu]" in done.stderr and "pinstream[gpu]" in done.stderr, done.stderr
