"""Fixtures shared by the cluster tests."""

from __future__ import annotations

import pytest

from conf.config import load_config
from tests.unit.cluster.bench_files import write_all
from tests.unit.cluster.plan_args import ISSUE_ARGS, parse

EMITTED = ("rayservice.yaml", "raycluster-ingest.yaml")


@pytest.fixture(scope="module")
def emitted_stream(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The manifests `pinstream plan <issue example> --emit kuberay` writes, with every
    benchmark figure (GPU ones too), so that every bound moves."""
    results = tmp_path_factory.mktemp("results")
    write_all(results)
    out = tmp_path_factory.mktemp("emitted")
    argv = [*ISSUE_ARGS, "--results-dir", str(results), "--emit", "kuberay", "--out", str(out)]
    args = parse(argv)
    assert args.run(load_config(), args) == 0
    return "---\n".join((out / name).read_text() for name in EMITTED)
