"""Synthetic pin images: deterministic, one look per style that a plain classifier tells
apart, written as files whose file:// URLs pass the event contract and the fetcher."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from conf.config import ImagesConfig
from streams.events import encode_pin_event, parse_pin_event
from streams.image_decode import decode_image
from streams.image_fetch import ImageFetcher
from streams.synthetic import STYLES, PinGenerator
from streams.synthetic_images import render_pin_image, write_pin_images


def png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_an_image_depends_only_on_the_seed_and_the_pin() -> None:
    pins = PinGenerator(seed=4).pins(3, event_time=1)
    first = [png(render_pin_image(pin, seed=4)) for pin in pins]
    again = [png(render_pin_image(pin, seed=4)) for pin in reversed(pins)][::-1]
    assert first == again
    assert png(render_pin_image(pins[0], seed=5)) != first[0]
    assert len(set(first)) == 3


@pytest.mark.parametrize("size", [32, 64])
def test_images_are_rgb_of_the_size_asked(size: int) -> None:
    image = render_pin_image(PinGenerator(seed=1).pins(1, event_time=1)[0], size=size)
    assert image.mode == "RGB" and image.size == (size, size)
    with pytest.raises(ValueError, match="size must be >= 16"):
        render_pin_image(PinGenerator(seed=1).pins(1, event_time=1)[0], size=8)


def features(pixels: np.ndarray) -> np.ndarray:
    """A 4x4 thumbnail and a coarse colour histogram: what a plain classifier sees."""
    side = pixels.shape[0] // 4
    thumb = pixels.reshape(4, side, 4, side, 3).mean(axis=(1, 3)).ravel() / 255
    bins = (pixels // 64).reshape(-1, 3) @ np.array([16, 4, 1])
    histogram = np.bincount(bins, minlength=64) / bins.size
    return np.concatenate([thumb, 4 * histogram])


def test_each_style_has_a_look_a_nearest_centroid_classifier_tells_apart() -> None:
    pins = PinGenerator(seed=21).pins(600, event_time=1)
    train, held_out = pins[:400], pins[400:]

    def feature_rows(group):
        return np.stack([features(np.asarray(render_pin_image(p, 21, 32))) for p in group])

    x_train, x_test = feature_rows(train), feature_rows(held_out)
    centroids = np.stack(
        [x_train[[p.style == style for p in train]].mean(axis=0) for style in STYLES]
    )
    distances = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    predicted = [STYLES[i] for i in distances.argmin(axis=1)]
    accuracy = np.mean([guess == p.style for guess, p in zip(predicted, held_out, strict=True)])
    assert accuracy >= 0.95, accuracy  # chance is 0.1


def test_written_images_are_file_urls_the_contract_and_the_fetcher_take(tmp_path: Path) -> None:
    pins = PinGenerator(seed=8).pins(5, event_time=1)
    written = write_pin_images(pins, str(tmp_path / "images"), seed=8, size=32)
    fetcher = ImageFetcher(ImagesConfig(enabled=True))  # the defaults: file:// allowed
    for pin, before in zip(written, pins, strict=True):
        assert pin.event.image_url == (tmp_path / "images" / f"{pin.event.pin_id}.png").as_uri()
        assert pin.event.title == before.event.title and pin.style == before.style
        assert parse_pin_event(*encode_pin_event(pin.event)) == pin.event
        pixels = decode_image(fetcher.fetch(pin.event.image_url), 32, 10_000)
        np.testing.assert_array_equal(pixels, np.asarray(render_pin_image(before, 8, 32)))
