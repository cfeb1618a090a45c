"""The dead-letter topic: every refused event, with its reason and where it came from."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings, LazyProducer

PREVIEW_CHARS = 200


@dataclass(frozen=True)
class DeadLetter:
    """One refused record: why, and exactly which source record it was."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def to_json_bytes(self) -> bytes:
        """The DLQ record value: readable fields plus the original bytes, base64."""
        value = self.value or b""
        return json.dumps(
            {
                "reason": self.reason,
                "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
                "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
                "key_base64": base64.b64encode(self.key).decode() if self.key is not None else None,
                # Cut after decoding, so the preview never ends in half a character.
                "value_preview": value.decode("utf-8", "replace")[:PREVIEW_CHARS],
                "value_base64": base64.b64encode(value).decode()
                if self.value is not None
                else None,
            }
        ).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes) -> DeadLetter:
        """Read back a DLQ record value."""
        doc = json.loads(data)
        raw = doc["value_base64"]
        raw_key = doc["key_base64"]
        return cls(
            reason=doc["reason"],
            topic=doc["source"]["topic"],
            partition=doc["source"]["partition"],
            offset=doc["source"]["offset"],
            key=base64.b64decode(raw_key) if raw_key is not None else None,
            value=base64.b64decode(raw) if raw is not None else None,
        )


class DeadLetterWriter(LazyProducer):
    """Sends dead letters to the DLQ topic; the producer is created on first use."""

    def __init__(
        self, bootstrap: str, topic: str, client: KafkaClientSettings = DEFAULT_CLIENT
    ) -> None:
        super().__init__(bootstrap, client)
        self.topic = topic

    def write(self, letter: DeadLetter) -> None:
        """Queue one dead letter (call `flush` to wait for the ack)."""
        self._send(self.topic, key=letter.key, value=letter.to_json_bytes())
