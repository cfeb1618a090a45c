"""Restarts of `pinstream up` on the embedded default (a memory-only broker) keep the pins:
every one a snapshot held after kill -9, every one ingested after Ctrl-C (the final snapshot).

One flow, in order: up, produce, kill -9, up again, produce, Ctrl-C, up again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from conf.config import PinstreamConfig, load_config
from shards.exceptions import SnapshotError
from shards.snapshot import open_snapshot
from streams.local_broker import free_loopback_port
from streams.producer import PinProducer
from streams.synthetic import PinGenerator, SyntheticPin
from tests.e2e.up_process import UpProcess
from tests.waiting import wait_until

COUNT, MORE = 200, 40
SNAPSHOT_INTERVAL_S = 3.0


class Restarts:
    """One storage root and config, and the `pinstream up` run now going."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "pinstream.yaml"
        self.port = free_loopback_port()
        self.generator = PinGenerator(seed=7, id_prefix="restart")
        self.pins: dict[str, SyntheticPin] = {}  # every pin produced, at its newest version
        self.current: UpProcess | None = None

    def up(self, snapshot_interval_s: float) -> dict:
        """Start `pinstream up` with this snapshot interval; its state once ready."""
        settings = {
            "serve": {"port": self.port},
            "storage": {"root": str(self.root / "var")},
            "shards": {"snapshot_interval_s": snapshot_interval_s},
        }
        self.config.write_text(yaml.safe_dump(settings))
        state_file = self.root / "var" / "run" / "stack.json"
        self.current = UpProcess(self.config, state_file, self.root / "up.log")
        return self.current.wait_ready()

    @property
    def cfg(self) -> PinstreamConfig:
        return load_config(self.config).with_absolute_paths()

    def produce(self, pins: list[SyntheticPin]) -> None:
        assert self.current is not None
        with PinProducer(self.current.state["bootstrap"], self.cfg.topics.pins) as producer:
            for pin in pins:
                producer.send(pin.event)
            producer.flush()
        self.pins.update((pin.event.pin_id, pin) for pin in pins)

    def health(self) -> dict:
        assert self.current is not None
        try:
            return dict(requests.get(f"{self.current.state['url']}/healthz", timeout=5).json())
        except (requests.RequestException, ValueError):
            return {}

    def wrongly_served(self) -> dict[str, tuple[str | None, str]]:
        """GET /v1/pins/{id} of every pin produced: (served title or None, expected title) of
        those not served at their newest version."""
        assert self.current is not None
        url = f"{self.current.state['url']}/v1/pins"
        wrong = {}
        for pin_id, pin in self.pins.items():
            served = served_title(f"{url}/{pin_id}")
            if served != pin.event.title:
                wrong[pin_id] = (served, pin.event.title)
        return wrong

    def wait_indexed(self, count: int) -> None:
        wait_until(lambda: self.health().get("pins") == count, 180, f"{count} pins indexed")


def served_title(url: str) -> str | None:
    """The title GET url serves, None on 404; a 503 (the shard did not answer within
    serve.shard_timeout_s, as on a busy machine) is asked again."""
    answers: list[requests.Response] = []

    def answered() -> bool:
        answers.append(requests.get(url, timeout=10))
        return answers[-1].status_code != 503

    wait_until(answered, 60, f"an answer from {url}")
    response = answers[-1]
    assert response.status_code in (200, 404), response.text
    return response.json()["title"] if response.status_code == 200 else None


@pytest.fixture(scope="module")
def restarts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarts]:
    flow = Restarts(tmp_path_factory.mktemp("restarts"))
    try:
        yield flow
    finally:
        if flow.current is not None:
            flow.current.close()


def test_kill_9_then_up_again_serves_every_pin_a_snapshot_held(restarts: Restarts) -> None:
    restarts.up(snapshot_interval_s=SNAPSHOT_INTERVAL_S)
    restarts.produce(restarts.generator.pins(COUNT))
    restarts.wait_indexed(COUNT)
    killed = restarts.current
    assert killed is not None
    cfg = restarts.cfg
    served: dict[int, int] = {}  # per shard, the log offset its replica has applied up to

    def every_shard_answers() -> bool:
        served.clear()
        served.update((s["shard"], s["log_offset"]) for s in restarts.health().get("shards", []))
        return len(served) == cfg.shards.count

    def snapshots_cover_the_log() -> bool:
        try:
            offsets = [
                open_snapshot(cfg.snapshot_root(shard)).meta["log_offsets"][str(shard)]
                for shard in served
            ]
        except (SnapshotError, KeyError):  # none yet
            return False
        return all(offset >= served[shard] for shard, offset in zip(served, offsets, strict=True))

    wait_until(every_shard_answers, 60, "every shard's log offset")
    wait_until(snapshots_cover_the_log, 10 * SNAPSHOT_INTERVAL_S, "a snapshot of every pin")
    killed.kill_group()
    killed.wait_all_gone()  # nothing of it is left to block or meet the next run

    # No periodic snapshot from here on: only the final one of a Ctrl-C (next test) keeps
    # what this run ingests.
    state = restarts.up(snapshot_interval_s=3600)
    assert state["restored_pins"] == COUNT, state
    assert restarts.wrongly_served() == {}
    updated = restarts.generator.updated(next(iter(restarts.pins.values())))
    restarts.produce([*restarts.generator.pins(MORE, start=COUNT), updated])
    wait_until(
        lambda: not restarts.wrongly_served(),
        120,
        "new pins and the update of a restored pin served",
    )
    assert restarts.health()["pins"] == COUNT + MORE


def test_ctrl_c_then_up_again_serves_every_pin_and_ingests_new_events(
    restarts: Restarts,
) -> None:
    stopped = restarts.current
    assert stopped is not None and stopped.process.poll() is None, "needs the previous test's run"
    assert stopped.interrupt() == 0, stopped.log_tail()
    stopped.wait_all_gone()

    state = restarts.up(snapshot_interval_s=3600)
    assert state["restored_pins"] == COUNT + MORE, state
    assert restarts.wrongly_served() == {}
    restarts.produce(restarts.generator.pins(1, start=COUNT + MORE))
    restarts.wait_indexed(COUNT + MORE + 1)
