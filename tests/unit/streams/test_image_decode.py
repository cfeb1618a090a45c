"""decode_image on real Pillow images of every common kind, and on broken and hostile bytes."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageOps

from streams.exceptions import ImageTooLarge, ImageUndecodable
from streams.image_decode import decode_image
from streams.synthetic import PinGenerator
from streams.synthetic_images import render_pin_image

PIN = PinGenerator(seed=2).pins(1, event_time=1)[0]


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_a_png_decodes_to_the_fitted_rgb_pixels() -> None:
    picture = render_pin_image(PIN, size=64).crop((0, 8, 64, 40))  # 64 x 32, not square
    pixels = decode_image(encoded(picture, "PNG"), size=24, max_pixels=10_000)
    # The oracle: Pillow's own fit (shorter side to 24, centre crop) of the original.
    expected = np.asarray(ImageOps.fit(picture, (24, 24), method=Image.Resampling.BICUBIC))
    assert pixels.dtype == np.uint8 and pixels.shape == (24, 24, 3)
    np.testing.assert_array_equal(pixels, expected)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGBA", "PNG"), ("L", "PNG"), ("P", "GIF"), ("CMYK", "JPEG"), ("RGB", "WEBP")],
)
def test_every_mode_comes_out_rgb(mode: str, fmt: str) -> None:
    picture = render_pin_image(PIN, size=48).convert(mode)
    pixels = decode_image(encoded(picture, fmt), size=32, max_pixels=10_000)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert pixels.std() > 10  # the picture, not a blank


def test_an_animation_gives_its_first_frame() -> None:
    first, second = Image.new("RGB", (32, 32), (250, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 250))
    data = encoded(first, "GIF", save_all=True, append_images=[second])
    pixels = decode_image(data, size=32, max_pixels=10_000)
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


def png_and_jpeg() -> list[bytes]:
    picture = render_pin_image(PIN, size=64)
    return [encoded(picture, "PNG"), encoded(picture, "JPEG", quality=90)]


@pytest.mark.parametrize("data", png_and_jpeg(), ids=["png", "jpeg"])
def test_a_truncated_file_is_refused(data: bytes) -> None:
    with pytest.raises(ImageUndecodable, match="not a decodable image"):
        decode_image(data[: len(data) // 2], size=32, max_pixels=10_000)


def test_a_corrupt_png_is_refused_by_its_checksum() -> None:
    data = bytearray(png_and_jpeg()[0])
    start = data.index(b"IDAT") + 8  # inside the first image data chunk
    data[start : start + 4] = bytes(255 - b for b in data[start : start + 4])
    with pytest.raises(ImageUndecodable, match="broken PNG file"):
        decode_image(bytes(data), size=32, max_pixels=10_000)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"<html>not an image</html>", b"\x89PNG\r\n"])
def test_bytes_that_are_no_image_are_refused(data: bytes) -> None:
    with pytest.raises(ImageUndecodable, match="not a decodable image"):
        decode_image(data, size=32, max_pixels=10_000)


@pytest.mark.parametrize(
    ("side", "match"),
    [
        (8_000, r"8000x8000 pixels is over images.max_pixels \(40000000\)"),  # the config's cap
        (14_000, r"refused as a decompression bomb"),  # over Pillow's own, at open
    ],
)
def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(
    side: int, match: str
) -> None:
    # One-bit pixels compress to a few kilobytes: tens or hundreds of M pixels once decoded.
    bomb = encoded(Image.new("1", (side, side)), "PNG")
    assert len(bomb) < 100_000
    started = time.monotonic()
    with pytest.raises(ImageTooLarge, match=match):
        decode_image(bomb, size=32, max_pixels=40_000_000)
    assert time.monotonic() - started < 0.5  # the header only: decoding would take seconds


def test_the_pixel_cap_counts_width_times_height() -> None:
    data = encoded(Image.new("RGB", (100, 50)), "PNG")
    assert decode_image(data, size=8, max_pixels=5000).shape == (8, 8, 3)
    with pytest.raises(ImageTooLarge, match=r"100x50 pixels is over images.max_pixels \(4999\)"):
        decode_image(data, size=8, max_pixels=4999)
