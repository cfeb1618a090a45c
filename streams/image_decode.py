"""Decoding fetched image bytes with Pillow into the square RGB array the encoder takes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from streams.exceptions import ImageRefused, ImageTooLarge, ImageUndecodable


def decode_image(data: bytes, size: int, max_pixels: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB of an encoded image: scaled so its shorter side is `size`,
    then centre-cropped (as CLIP-style preprocessing does). The first frame of an animation.

    Refuses, with the reason, an image over `max_pixels` before decoding any pixel
    (ImageTooLarge), and bytes that are not one whole image (ImageUndecodable).
    """
    try:
        # Opening reads only the header: the size is known before any pixel is decoded.
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image of {width}x{height} pixels is over images.max_pixels ({max_pixels})"
                )
            header.verify()  # checksums and structure, where the format has them
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")  # decodes every pixel: a truncated file fails here
    except ImageRefused:
        raise
    except UnidentifiedImageError as exc:
        raise ImageUndecodable("not a decodable image: no image format recognised") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # Pillow's decoders raise many types on hostile bytes
        raise ImageUndecodable(f"not a decodable image: {type(exc).__name__}: {exc}"[:300]) from exc
    square = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.uint8)
    assert pixels.shape == (size, size, 3), pixels.shape
    return pixels
