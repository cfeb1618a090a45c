"""Producing pin events to Kafka (key = pin_id, value = JSON), optionally at a fixed rate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType

from kafka import KafkaProducer

from streams.events import PinEvent, encode_pin_event
from streams.kafka_io import make_producer


class PinProducer:
    """Sends pin events; the Kafka producer is created on first use. Use it with `with`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.bootstrap)
        return self._producer

    def send(self, event: PinEvent) -> None:
        """Queue one event (call `flush` to wait until the broker has it)."""
        key, value = encode_pin_event(event)
        self.producer.send(self.topic, key=key, value=value)

    def send_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Queue arbitrary bytes: how malformed events reach the pipeline in tests."""
        self.producer.send(self.topic, key=key, value=value)

    def send_all(
        self,
        events: Iterable[PinEvent],
        rate: float | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send events, at most `rate` per second when given; flush; return how many."""
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate}")
        started = time.monotonic()
        sent = 0
        for event in events:
            if rate is not None:
                due = started + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.send(event)
            sent += 1
            if on_progress is not None and sent % 500 == 0:
                on_progress(sent)
        self.flush()
        return sent

    def flush(self, timeout_s: float = 30.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> PinProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
