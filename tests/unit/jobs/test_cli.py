import json
from pathlib import Path

import pytest

from jobs.cli import main


def test_bad_config_is_refused_with_the_key_path(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("serve:\n  prot: 1\n")
    assert main(["--config", str(config), "status"]) == 2
    assert "serve.prot: unknown key" in capsys.readouterr().err


def test_query_without_a_running_stack_says_so(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  root: {tmp_path / 'var'}\n")
    assert main(["--config", str(config), "query", "sofa"]) == 2
    assert "no local stack is running" in capsys.readouterr().err


def test_produce_needs_a_count() -> None:
    with pytest.raises(SystemExit):
        main(["produce"])  # --count is required


def test_a_stale_state_file_is_not_trusted(tmp_path: Path, capsys) -> None:
    run = tmp_path / "var" / "run"
    run.mkdir(parents=True)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    (run / "stack.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": dead_pid}))
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  root: {tmp_path / 'var'}\n")
    assert main(["--config", str(config), "query", "sofa"]) == 2
    assert "no local stack is running" in capsys.readouterr().err


def test_router_train_from_a_vectors_file_and_refuses_to_replace_silently(
    tmp_path: Path, capsys
) -> None:
    import numpy as np

    from conf.config import load_config
    from shards.router_store import load_router

    config = tmp_path / "c.yaml"
    config.write_text(
        f"storage:\n  root: {tmp_path / 'var'}\n"
        "shards:\n  count: 3\n  dim: 8\n  sealed_index: Flat\n"
        "  routing: centroid\n  route_groups: 6\n  route_nprobe: 2\n"
    )
    rng = np.random.default_rng(0)
    vectors = tmp_path / "v.npy"
    np.save(vectors, rng.standard_normal((500, 8)).astype(np.float32))
    train = ["--config", str(config), "router", "train", "--vectors", str(vectors)]
    assert main([*train, "--sample", "300"]) == 0
    assert "sample vectors per shard" in capsys.readouterr().out
    cfg = load_config(config).with_absolute_paths()
    router = load_router(cfg)
    assert router is not None and (router.num_shards, router.groups, router.nprobe) == (3, 6, 2)
    assert main(train) == 2
    assert "has a router" in capsys.readouterr().err
    assert main([*train, "--replace"]) == 0
    assert main([*train, "--generation", "g2"]) == 0  # a generation of its own
    assert load_router(cfg.for_generation("g2", "base")) is not None
    np.save(vectors, rng.standard_normal((500, 5)).astype(np.float32))
    assert main([*train, "--generation", "g3"]) == 2
    assert "dim 5" in capsys.readouterr().err


def test_router_train_without_snapshots_says_how_to_get_them(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  root: {tmp_path / 'var'}\n")
    assert main(["--config", str(config), "router", "train"]) == 2
    assert "seal them first" in capsys.readouterr().err
