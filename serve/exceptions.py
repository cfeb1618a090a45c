"""Errors raised by the serve package.

Domain code raises these; the HTTP edge (serve/http_api.py) maps each to a status code in
one table. None of them is a bug: a bug is any other exception, answered with a 500.
"""

from conf.errors import PinstreamError


class ServeError(PinstreamError):
    """Base class for every error of the serve package."""


class ShardNotReady(ServeError):
    """A shard replica did not catch up with its log partition in time; Serve starts another."""


class InvalidQuery(ServeError):
    """A query that passed the request schema but cannot run on this index (a wrong vector)."""


class ImagesNotEmbedded(InvalidQuery):
    """A search by image asks a generation whose model has no image tower (a text model)."""

    def __init__(self, generation: str) -> None:
        super().__init__(f"generation {generation}'s model embeds no images")
        self.generation = generation

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return type(self), (self.generation,)


class GenerationNotServed(ServeError):
    """A query names a model generation that no warm application serves."""

    def __init__(self, generation: str | None, warm: list[str]) -> None:
        super().__init__(f"generation {generation!r} is not served; warm generations: {warm}")
        self.generation = generation
        self.warm = warm

    def __reduce__(self) -> tuple[type, tuple[str | None, list[str]]]:
        return type(self), (self.generation, self.warm)


class PinNotIndexed(ServeError):
    """The pin asked for is not in the generation's index."""

    def __init__(self, pin_id: str, generation: str) -> None:
        super().__init__(f"pin {pin_id!r} is not indexed in {generation!r}")
        self.pin_id = pin_id
        self.generation = generation

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.pin_id, self.generation)


class ShardUnavailable(ServeError):
    """A shard did not answer: it timed out, or its replica is gone (not a bug in it)."""

    def __init__(self, shard: int, message: str) -> None:
        super().__init__(message)
        self.shard = shard

    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        return type(self), (self.shard, str(self))
