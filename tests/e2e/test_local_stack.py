"""End to end, as a user drives it: `pinstream up`, `pinstream produce`, `pinstream query`, HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from streams.dead_letter import DeadLetter
from streams.kafka_io import drain
from streams.local_broker import free_loopback_port
from streams.producer import PinProducer
from streams.synthetic import STYLES, PinGenerator
from tests.e2e.up_process import ready_state
from tests.waiting import wait_until

COUNT = 400
SEED = 4
PINSTREAM = [sys.executable, "-m", "jobs.cli"]


class Stack:
    def __init__(self, process: subprocess.Popen, config: Path, state: dict) -> None:
        self.process, self.config, self.state = process, config, state
        self.url = state["url"]
        self.bootstrap = state["bootstrap"]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*PINSTREAM, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pins_indexed(self) -> int:
        try:
            return int(requests.get(f"{self.url}/healthz", timeout=5).json()["pins"])
        except (requests.RequestException, ValueError, KeyError):
            return -1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    config = root / "pinstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {"serve": {"port": free_loopback_port()}, "storage": {"root": str(root / "var")}}
        )
    )
    log = open(root / "up.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [*PINSTREAM, "--config", str(config), "up"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    state_file = root / "var" / "run" / "stack.json"
    try:
        wait_until(
            lambda: ready_state(state_file, process.pid) or process.poll() is not None,
            240,
            "pinstream up",
        )
        assert process.poll() is None, (root / "up.log").read_text()[-3000:]
        running = Stack(process, config, ready_state(state_file) or {})
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_produced_pins_become_searchable_exactly_once(stack: Stack) -> None:
    result = stack.cli("produce", "--count", str(COUNT), "--seed", str(SEED))
    assert result.returncode == 0, result.stderr
    assert f"sent {COUNT} pins" in result.stdout
    wait_until(lambda: stack.pins_indexed() == COUNT, 300, f"{COUNT} pins searchable")
    body = requests.post(
        f"{stack.url}/v1/search", json={"text": "coffee table", "k": 1000}, timeout=30
    ).json()
    ids = [r["pin_id"] for r in body["results"]]
    assert len(ids) == len(set(ids)) == COUNT


def test_style_queries_return_mostly_that_style(stack: Stack) -> None:
    pins = {p.event.pin_id: p for p in PinGenerator(seed=SEED).pins(COUNT)}
    for style in ("mid-century modern", "farmhouse", "japandi"):
        assert style in STYLES
        body = requests.post(
            f"{stack.url}/v1/search", json={"text": f"{style} sofa", "k": 10}, timeout=30
        ).json()
        matching = sum(pins[r["pin_id"]].style == style for r in body["results"])
        assert matching >= 6, (style, [r["title"] for r in body["results"]])


def test_query_command_prints_ranked_titles(stack: Stack) -> None:
    result = stack.cli("query", "rustic reclaimed wood bookshelf", "-k", "3")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].lstrip().startswith("1.") and len(lines) == 4


def test_update_delete_and_malformed_events(stack: Stack) -> None:
    generator = PinGenerator(seed=SEED)
    pins = generator.pins(COUNT)
    updated = generator.updated(pins[1])
    with PinProducer(stack.bootstrap, "pins") as producer:
        producer.send(updated.event)
        producer.send(generator.delete(pins[2].event.pin_id))
        producer.send_raw(b"broken", b"{this is not json")
        producer.flush()
    pin_url = f"{stack.url}/v1/pins"
    wait_until(
        lambda: (
            requests.get(f"{pin_url}/{pins[1].event.pin_id}", timeout=5).json().get("title")
            == updated.event.title
        ),
        60,
        "updated title served",
    )
    wait_until(
        lambda: requests.get(f"{pin_url}/{pins[2].event.pin_id}", timeout=5).status_code == 404,
        60,
        "delete",
    )
    letters = [DeadLetter.from_json_bytes(r.value) for r in drain(stack.bootstrap, "pins.dlq")]
    assert any(
        letter.value == b"{this is not json" and "JSON" in letter.reason for letter in letters
    )
    # The stream goes on after the bad event.
    late = generator.pins(1, start=COUNT)[0]
    with PinProducer(stack.bootstrap, "pins") as producer:
        producer.send(late.event)
    wait_until(
        lambda: requests.get(f"{pin_url}/{late.event.pin_id}", timeout=5).status_code == 200,
        60,
        "late pin",
    )


def test_status_command_reports_shards_and_freshness(stack: Stack) -> None:
    result = stack.cli("status")
    assert result.returncode == 0, result.stderr
    assert ": ok," in result.stdout
    assert "shard 0:" in result.stdout and "freshness p50" in result.stdout
    assert "committed" in result.stdout


def test_backfill_then_canary_and_rollback_through_the_command_line(stack: Stack) -> None:
    served, new = "minilm-l6-v2-base", "regen"
    live = stack.pins_indexed()
    backfill = stack.cli("backfill", "--model", "base", "--generation", new, "--until-idle", "5")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert f"generation {new} is warm" in backfill.stdout

    def search(**body: object) -> dict:
        body = {"text": "farmhouse dining chair", "k": 5, **body}
        return requests.post(f"{stack.url}/v1/search", json=body, timeout=30).json()

    set_canary = stack.cli(
        "traffic", "set", "--primary", served, "--canary", new, "--percent", "50"
    )
    assert set_canary.returncode == 0, set_canary.stderr[-3000:]
    wait_until(
        lambda: len(search(generation=new, k=1000)["results"]) == live, 120, f"{live} pins in {new}"
    )
    assert {search()["generation"] for _ in range(30)} == {served, new}
    sealed = stack.cli("seal", "--generation", new)
    assert sealed.returncode == 0, sealed.stderr[-3000:]
    reports = [json.loads(line) for line in sealed.stdout.splitlines()]
    assert [r["published"] for r in reports] == [True, True]
    assert sum(r["live"] for r in reports) == live
    rollback = stack.cli("traffic", "rollback")
    assert rollback.returncode == 0, rollback.stderr[-3000:]
    assert {search()["generation"] for _ in range(10)} == {served}


def test_ctrl_c_stops_everything(stack: Stack) -> None:
    broker_port = int(stack.bootstrap.rsplit(":", 1)[1])
    os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(timeout=90) == 0
    for port in (broker_port, int(stack.url.rsplit(":", 1)[1])):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    leftovers = subprocess.run(
        ["pgrep", "-s", str(stack.process.pid)], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == "", f"orphans: {leftovers.stdout}"


# What Ray, Serve and kafka-python print in their own formats: a level word, a native log
# line ("[date E pid tid] file.cc:N:"), a "(raylet)" notice, a traceback. pinstream's own
# lines carry none of these.
FRAMEWORK_NOISE = re.compile(
    r"\b(ERROR|WARNING)\b|Traceback|\(raylet\)|^\[[\d :,-]+ [EWF] \d+ \d+\]"
)


def test_up_prints_no_framework_noise(stack: Stack) -> None:
    # Last in the module: all that `pinstream up` printed, from its start to its Ctrl-C.
    if stack.process.poll() is None:
        os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(timeout=90) == 0
    output = (stack.config.parent / "up.log").read_text()
    assert f"pinstream is up at {stack.url}" in output
    assert [line for line in output.splitlines() if FRAMEWORK_NOISE.search(line)] == []
