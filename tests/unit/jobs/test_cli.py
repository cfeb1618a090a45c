import json
from pathlib import Path

import numpy as np
import pytest

from jobs.cli import main
from shards import ShardConfig, ShardIndex


def test_compact_command_publishes_a_new_snapshot(tmp_path: Path, capsys) -> None:
    index = ShardIndex(ShardConfig(dim=8))
    vectors = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    index.upsert(np.arange(300), vectors)
    index.delete(np.arange(50))
    index.save(str(tmp_path), log_offsets={0: 350})

    assert main(["compact", "--uri", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["live"] == 250
    assert report["log_offsets"] == {"0": 350}
    assert ShardIndex.load_latest(str(tmp_path)).log_offsets == {0: 350}


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
