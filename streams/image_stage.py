"""The image stage: fetch and decode each upsert's `image_url`, on CPU workers, ahead of the
embedder. Rows whose image fails get `error` (they go to the DLQ) unless the config lets
their text count without it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from conf.config import ImagesConfig
from streams.exceptions import ImageRefused
from streams.image_decode import decode_image
from streams.image_fetch import ImageFetcher, Resolver, resolve_host
from streams.poll_batch import pack, spans_of, unpack

log = logging.getLogger(__name__)
IMAGE_COLUMN = "image"


def image_column(pixels: list[np.ndarray | None], size: int) -> pa.FixedSizeBinaryArray:
    """One row per entry: the raw bytes of a (size, size, 3) uint8 RGB array, or null."""
    width = size * size * 3
    values: list[bytes | None] = []
    for array in pixels:
        if array is not None:
            assert array.shape == (size, size, 3) and array.dtype == np.uint8, array.shape
            values.append(np.ascontiguousarray(array).tobytes())
        else:
            values.append(None)
    return pa.array(values, pa.binary(width))


def image_arrays(column: pa.Array | pa.ChunkedArray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (n, size, size, 3) uint8 images of an `image` column (zeros where null) and which
    rows have one."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = size * size * 3
    if column.type != pa.binary(width):
        raise ValueError(f"image column of type {column.type}, expected {size}x{size} RGB")
    n = len(column)
    present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if n == 0:
        return np.zeros((0, size, size, 3), dtype=np.uint8), present
    # A fixed-size binary column is one buffer of n * width bytes (from its offset on).
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    start = column.offset * width
    images = data[start : start + n * width].reshape(n, size, size, 3).copy()
    images[~present] = 0
    return images, present


class FetchImages:
    """Ray Data stage: add `image` (decoded RGB bytes) to every upsert that has an image_url;
    up to `images.fetch_concurrency` images are fetched at once.

    A record whose image cannot be fetched or decoded gets `error` = the reason (and no
    text, so the embedder skips it), unless `images.text_counts_without_image`: then it
    keeps its text, gets no image, and the reason is logged.
    """

    def __init__(self, images: ImagesConfig, resolve: Resolver = resolve_host) -> None:
        self.images = images
        self.fetcher = ImageFetcher(images, resolve)

    def __call__(self, polls: pa.Table) -> pa.Table:
        records = unpack(polls)
        urls = records.column("image_url").to_pylist()
        errors = records.column("error").to_pylist()
        texts = records.column("text").to_pylist()
        pin_ids = records.column("pin_id").to_pylist()
        wanted = [i for i, url in enumerate(urls) if url is not None and errors[i] is None]
        pixels: list[np.ndarray | None] = [None] * records.num_rows
        if wanted:
            workers = min(self.images.fetch_concurrency, len(wanted))
            with ThreadPoolExecutor(workers, thread_name_prefix="fetch-image") as pool:
                loaded = list(pool.map(self.load, [urls[i] for i in wanted]))
            for i, (array, reason) in zip(wanted, loaded, strict=True):
                pixels[i] = array
                if reason is None:
                    continue
                if self.images.text_counts_without_image:
                    log.warning("image of pin %s refused, its text counts: %s", pin_ids[i], reason)
                else:
                    errors[i], texts[i] = f"image_url: {reason}", None
        for name, values in (("error", errors), ("text", texts)):
            records = records.set_column(
                records.schema.get_field_index(name), name, pa.array(values, pa.string())
            )
        column = image_column(pixels, self.images.image_size)
        return pack(records.append_column(IMAGE_COLUMN, column), spans_of(polls))

    def load(self, url: str) -> tuple[np.ndarray | None, str | None]:
        """The decoded image at `url` and None, or None and the reason it was refused."""
        try:
            data = self.fetcher.fetch(url)
            return decode_image(data, self.images.image_size, self.images.max_pixels), None
        except ImageRefused as exc:
            return None, exc.reason
