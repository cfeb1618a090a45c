"""Synthetic pin images: each synthetic pin (streams/synthetic.py) rendered with Pillow.

Generated pictures, not photographs. Each style has its own look: a palette, a background
texture and the shape of its object, so an image encoder can learn to tell styles apart
from the picture alone, as a text encoder does from the style's words. Within a style,
pins vary: the object's place and size, the texture's phase and scale, the accent band in
the pin's own colour, pixel noise. An image depends only on the seed and the pin (its id,
style and colour), never on global random state or call order.
"""

from __future__ import annotations

import io
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conf.storage import resolve_uri
from streams.synthetic import COLOURS, STYLES, SyntheticPin

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class StyleLook:
    """What one style's pictures share: background, texture, object, its outline."""

    palette: tuple[RGB, RGB, RGB, RGB]  # background, texture, object, outline
    texture: str
    shape: str


STYLE_LOOKS: dict[str, StyleLook] = {
    "mid-century modern": StyleLook(
        ((222, 150, 40), (120, 70, 30), (0, 120, 120), (40, 30, 20)), "diagonal", "circle"
    ),
    "scandinavian": StyleLook(
        ((245, 242, 235), (215, 205, 190), (170, 190, 200), (120, 120, 120)), "plain", "square"
    ),
    "rustic": StyleLook(
        ((110, 70, 40), (80, 45, 25), (160, 110, 60), (40, 25, 15)), "stripes", "rectangle"
    ),
    "farmhouse": StyleLook(
        ((235, 235, 225), (190, 190, 180), (60, 80, 60), (30, 30, 30)), "planks", "triangle"
    ),
    "industrial": StyleLook(
        ((70, 70, 75), (150, 60, 40), (30, 30, 30), (200, 160, 80)), "grid", "bar"
    ),
    "bohemian": StyleLook(
        ((190, 80, 60), (240, 190, 60), (110, 40, 110), (250, 240, 220)), "dots", "diamond"
    ),
    "minimalist": StyleLook(
        ((250, 250, 250), (250, 250, 250), (20, 20, 20), (20, 20, 20)), "plain", "line"
    ),
    "art deco": StyleLook(
        ((15, 30, 45), (200, 165, 60), (230, 200, 90), (10, 10, 10)), "rays", "fan"
    ),
    "coastal": StyleLook(
        ((200, 230, 245), (40, 90, 160), (240, 230, 200), (30, 60, 110)), "waves", "ring"
    ),
    "japandi": StyleLook(
        ((220, 205, 180), (150, 130, 100), (60, 55, 50), (30, 28, 25)), "checks", "ellipse"
    ),
}
assert set(STYLE_LOOKS) == set(STYLES), "every synthetic style has a look"

# The accent band of a pin's colour attribute.
COLOUR_RGB: dict[str, RGB] = {
    "mustard": (225, 173, 1),
    "sage green": (156, 175, 136),
    "terracotta": (204, 78, 52),
    "navy": (20, 30, 90),
    "charcoal": (54, 69, 79),
    "cream": (255, 250, 220),
    "blush pink": (222, 93, 131),
    "olive": (128, 128, 0),
    "rust": (183, 65, 14),
    "ivory": (255, 255, 240),
    "emerald": (0, 155, 119),
    "slate blue": (106, 90, 205),
}
assert set(COLOUR_RGB) == set(COLOURS), "every synthetic colour has an RGB value"
NOISE = 12  # +- per channel: no two pins of a style are the same picture


def render_pin_image(pin: SyntheticPin, seed: int = 0, size: int = 64) -> Image.Image:
    """The RGB picture of `pin`: its style's look, varied by the pin, deterministic."""
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    look = STYLE_LOOKS[pin.style]
    key = f"{seed}:image:{pin.event.pin_id}"
    rng = random.Random(key)
    image = Image.new("RGB", (size, size), look.palette[0])
    draw = ImageDraw.Draw(image)
    _texture(draw, look, size, rng)
    _shape(draw, look, size, rng)
    band = max(2, size // 10)
    top = rng.choice((0, size - band))
    draw.rectangle((0, top, size - 1, top + band - 1), fill=COLOUR_RGB[pin.colour])
    noise = np.random.default_rng(zlib.crc32(key.encode())).integers(
        -NOISE, NOISE + 1, (size, size, 3)
    )
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_pin_images(
    pins: Sequence[SyntheticPin], folder: str, seed: int = 0, size: int = 64
) -> list[SyntheticPin]:
    """Render every pin as `<folder>/<pin_id>.png` (a path or a URI) and return the pins with
    `image_url` pointing at their image (file:// for a local folder)."""
    fs, root = resolve_uri(folder)
    fs.create_dir(root, recursive=True)
    result = []
    for pin in pins:
        path = f"{root}/{pin.event.pin_id}.png"
        encoded = io.BytesIO()
        render_pin_image(pin, seed, size).save(encoded, "PNG")
        with fs.open_output_stream(path) as out:
            out.write(encoded.getvalue())
        url = f"{folder.rstrip('/')}/{pin.event.pin_id}.png" if "://" in folder else None
        event = replace(pin.event, image_url=url or Path(path).as_uri())
        result.append(replace(pin, event=event))
    return result


def _texture(draw: ImageDraw.ImageDraw, look: StyleLook, size: int, rng: random.Random) -> None:
    colour = look.palette[1]
    step = max(3, int(size / rng.uniform(5, 8)))
    phase = rng.randrange(step)
    if look.texture == "stripes":
        for y in range(phase, size, step):
            draw.rectangle((0, y, size, y + step // 3), fill=colour)
    elif look.texture == "planks":
        for x in range(phase, size, step):
            draw.line((x, 0, x, size), fill=colour, width=1)
    elif look.texture == "diagonal":
        for offset in range(-size + phase, size, step):
            draw.line((offset, size, offset + size, 0), fill=colour, width=max(1, step // 3))
    elif look.texture == "grid":
        for v in range(phase, size, step):
            draw.line((v, 0, v, size), fill=colour)
            draw.line((0, v, size, v), fill=colour)
    elif look.texture == "dots":
        radius = max(1, step // 4)
        for y in range(phase, size, step):
            for x in range(phase, size, step):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif look.texture == "rays":
        cx, cy = size // 2, size
        for angle in range(phase * 7, 180, 15):
            rad = np.deg2rad(angle)
            tip = (cx + 2 * size * np.cos(rad), cy - 2 * size * np.sin(rad))
            draw.line((cx, cy, *tip), fill=colour, width=1)
    elif look.texture == "waves":
        for y in range(phase, size, step):
            points = [(x, y + 2 * np.sin((x + phase) / 3)) for x in range(size)]
            draw.line(points, fill=colour, width=1)
    elif look.texture == "checks":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=colour)
    elif look.texture != "plain":
        raise ValueError(f"unknown texture {look.texture!r}")


def _shape(draw: ImageDraw.ImageDraw, look: StyleLook, size: int, rng: random.Random) -> None:
    fill, outline = look.palette[2], look.palette[3]
    half = rng.uniform(0.2, 0.32) * size
    cx = rng.uniform(half + 2, size - half - 2)
    cy = rng.uniform(half + 2, size - half - 2)
    box = (cx - half, cy - half, cx + half, cy + half)
    if look.shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=2)
    elif look.shape == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=1)
    elif look.shape == "rectangle":
        wide = (cx - half, cy - half / 2, cx + half, cy + half / 2)
        draw.rectangle(wide, fill=fill, outline=outline)
    elif look.shape == "triangle":
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)
    elif look.shape == "bar":
        draw.rectangle((cx - half / 4, cy - half, cx + half / 4, cy + half), fill=fill)
        draw.ellipse((cx - half / 3, cy - half, cx + half / 3, cy - half / 3), fill=outline)
    elif look.shape == "diamond":
        points = [(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)]
        draw.polygon(points, fill=fill, outline=outline)
    elif look.shape == "line":
        draw.line((cx - half, cy, cx + half, cy), fill=fill, width=max(1, int(half / 6)))
    elif look.shape == "fan":
        draw.pieslice(box, 180, 360, fill=fill, outline=outline)
    elif look.shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(half / 3)))
    elif look.shape == "ellipse":
        draw.ellipse((cx - half, cy - half / 2, cx + half, cy + half / 2), fill=fill)
    else:
        raise ValueError(f"unknown shape {look.shape!r}")
