"""Producing pin events to Kafka (key = pin_id, value = JSON), optionally at a fixed rate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from streams.events import PinEvent, encode_pin_event
from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings, LazyProducer

FLUSH_EVERY = 10_000  # sends between delivery checks: bounds the futures held


class PinProducer(LazyProducer):
    """Sends pin events; the Kafka producer is created on first use. Use it with `with`."""

    def __init__(
        self, bootstrap: str, topic: str, client: KafkaClientSettings = DEFAULT_CLIENT
    ) -> None:
        super().__init__(bootstrap, client)
        self.topic = topic

    def send(self, event: PinEvent) -> None:
        """Queue one event (call `flush` to wait until the broker has it)."""
        key, value = encode_pin_event(event)
        self._send(self.topic, key=key, value=value)

    def send_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Queue arbitrary bytes: how malformed events reach the pipeline in tests."""
        self._send(self.topic, key=key, value=value)

    def send_all(
        self,
        events: Iterable[PinEvent],
        rate: float | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send events, at most `rate` per second when given; flush; return how many.

        Raises DeliveryFailed when the broker did not ack them all."""
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
            if sent % FLUSH_EVERY == 0:
                self.flush()
            if on_progress is not None and sent % 500 == 0:
                on_progress(sent)
        self.flush()
        return sent
