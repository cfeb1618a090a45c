"""Errors raised by the streams package."""

from conf.errors import PinstreamError


class StreamError(PinstreamError):
    """Base class for every error of the streams package."""


class InvalidRecord(StreamError):
    """A record refused for a reason of its own; it belongs on a dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPinEvent(InvalidRecord):
    """A Kafka record breaks the pin event contract; it belongs on the dead-letter topic."""


class DeliveryFailed(StreamError):
    """Records sent to Kafka were not acknowledged: they are not known to be written."""


class CheckpointFailed(StreamError):
    """A checkpoint could not be committed; nothing of it was, and its records are read again."""


class InvalidLogRecord(InvalidRecord):
    """An embeddings-log record that no shard may apply (undecodable, foreign schema or
    generation); it goes to a dead-letter place with its offset."""


class ImageRefused(InvalidRecord):
    """A pin's image could not be fetched or decoded; the reason goes to the dead-letter topic."""


class ImageURLRefused(ImageRefused):
    """An image_url the fetcher will not open: its scheme, host, credentials or form."""


class PrivateAddressRefused(ImageRefused):
    """An image host resolves to a private, loopback or other non-global address."""


class ImageRedirectRefused(ImageRefused):
    """An image server redirected to another host (or scheme), or redirected too often."""


class ImageTooLarge(ImageRefused):
    """An image over the byte cap, or over the pixel cap (a decompression bomb)."""


class ImageTimeout(ImageRefused):
    """An image not fetched in full within the configured time."""


class ImageFetchFailed(ImageRefused):
    """An image source answered with an error: not found, an HTTP error status, no connection."""


class ImageUndecodable(ImageRefused):
    """Fetched bytes that are not a whole image Pillow can decode: corrupt, truncated, other."""
