"""End to end with image pins, as `pinstream demo --images` drives it: a tiny CLIP trained
here, pins with file:// pictures through Kafka, the image stage, the CLIP embedder and the
shards, then searched over HTTP by text and by picture."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from streams.local_broker import free_loopback_port

COUNT = 150
PINSTREAM = [sys.executable, "-m", "jobs.cli"]


def test_demo_with_images_streams_pictures_and_finds_a_pin_by_its_own_picture(
    tmp_path: Path,
) -> None:
    config = tmp_path / "pinstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {"serve": {"port": free_loopback_port()}, "storage": {"root": str(tmp_path / "var")}}
        )
    )
    done = subprocess.run(
        [*PINSTREAM, "--config", str(config), "demo", "--images", "--count", str(COUNT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-3000:]
    before, after = map(
        float, re.search(r"text_to_image_recall@10 ([\d.]+) -> ([\d.]+)", out).groups()
    )
    assert after > before, "training on image pins raised text -> image recall"
    assert f"all {COUNT} pins searchable" in out
    assert "search by the picture of an indexed pin" in out and "found itself first" in out
    assert "search by the picture of an unseen" in out
    assert "Traceback" not in done.stderr and "WARNING" not in out, out[-3000:]
