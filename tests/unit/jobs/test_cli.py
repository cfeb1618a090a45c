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
