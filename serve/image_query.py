"""The image of a search by image: its bytes (fetched from `image_url`, or `image_base64`
decoded), decoded into the encoder's square RGB array once per query.

A URL is fetched by `streams.image_fetch.ImageFetcher` under the deployment's `images.*`
rules, the same that ingest obeys (schemes, allowed hosts, checked addresses, byte cap,
timeout), and sent bytes are capped by `images.max_bytes` before they are decoded. Fetching
and decoding block, so they run in a worker thread, never on the ingress's event loop; the
fallback and the shadow, which ask for the query's vector again in another generation's
space, reuse the pixels. A refusal is an InvalidQuery naming the fetcher's or decoder's reason.
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np

from conf.config import ImagesConfig
from serve.exceptions import InvalidQuery
from streams.exceptions import ImageRefused
from streams.image_decode import decode_image
from streams.image_fetch import ImageFetcher


class QueryImage:
    """The pixels of one query's image, loaded on first use, then shared.

    Give exactly one of `url` and `data` (the base64 text, already checked for its alphabet
    by the request schema).
    """

    def __init__(
        self, images: ImagesConfig, fetcher: ImageFetcher, url: str | None, data: str | None
    ) -> None:
        if (url is None) == (data is None):
            raise ValueError("a query image needs exactly one of url and data")
        if not images.enabled:
            # Checked before anything is read: a deployment that takes no images reads none,
            # and never tells a caller whether a path exists.
            raise InvalidQuery("search by image needs images.enabled in this deployment")
        self.images, self.fetcher, self.url, self.data = images, fetcher, url, data
        self._pixels: asyncio.Task[np.ndarray] | None = None

    async def pixels(self) -> np.ndarray:
        """The (images.image_size, images.image_size, 3) uint8 RGB image; InvalidQuery when it
        is refused. Loaded once, in a worker thread, however often it is asked for."""
        if self._pixels is None:
            self._pixels = asyncio.ensure_future(asyncio.to_thread(self._load))
        # Shielded: a caller that gives up (a cancelled request) leaves the load to end by
        # itself rather than cancelling it under the others who wait for it.
        return await asyncio.shield(self._pixels)

    def _load(self) -> np.ndarray:
        field = "image_url" if self.url is not None else "image_base64"
        try:
            data = self.fetcher.fetch(self.url) if self.url is not None else self._decoded()
            return decode_image(data, self.images.image_size, self.images.max_pixels)
        except ImageRefused as exc:
            raise InvalidQuery(f"{field} refused: {exc.reason}") from exc

    def _decoded(self) -> bytes:
        """The bytes of `data`, refused before decoding when they would exceed the cap."""
        text = str(self.data)
        size = len(text) // 4 * 3 - text[-2:].count("=")
        cap = self.images.max_bytes
        if size > cap:
            raise InvalidQuery(
                f"image_base64 refused: image of {size} bytes is over images.max_bytes ({cap})"
            )
        # validate=True: the schema checked the alphabet, so a failure here is a bug (a 500).
        return base64.b64decode(text, validate=True)
