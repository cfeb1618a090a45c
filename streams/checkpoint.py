"""A checkpoint: the source offsets read since the last commit, committed only once every
record they cover is known to be written.

As quix-streams' `checkpointing/checkpoint.py` does it: flush every sink, check
what was not produced, raise, and only then commit. Here the sinks are the
embeddings log and the DLQ; each keeps its send futures (streams/kafka_io.py) and
its flush raises DeliveryFailed for a record that was not acked. A failed
checkpoint commits nothing: the job goes back to the last good commit, and the
log's versions make the records it reads again harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from streams.exceptions import CheckpointFailed, DeliveryFailed
from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings, LazyProducer, commit_offsets
from streams.offsets import OffsetTracker


class Checkpoint:
    """Poll spans whose records were sent to `sinks`, waiting for `commit`."""

    def __init__(
        self,
        committer: KafkaConsumer,
        topic: str,
        start_offsets: Mapping[int, int],
        sinks: Sequence[LazyProducer],
        client: KafkaClientSettings = DEFAULT_CLIENT,
    ) -> None:
        self.committer = committer
        self.topic = topic
        self.sinks = sinks
        self.client = client
        self.tracker = OffsetTracker(start_offsets)
        self._spans: list[pa.Table] = []

    def add(self, spans: pa.Table) -> None:
        """Spans whose every record has been sent to a sink (or needed none)."""
        if spans.num_rows:
            self._spans.append(spans)

    @property
    def empty(self) -> bool:
        """Nothing read since the last commit."""
        return not self._spans

    def commit(self) -> dict[int, int]:
        """Check every sent record's delivery, then commit the offsets the spans cover.

        Raises CheckpointFailed (nothing committed) when a record was not acked or the
        commit itself failed; returns the committed offsets otherwise.
        """
        if self.empty:
            return self.tracker.committable()
        try:
            for sink in self.sinks:
                sink.flush()
        except DeliveryFailed as exc:
            self._spans.clear()  # their records are not known to be written: read them again
            raise CheckpointFailed(f"not committed, a write failed: {exc}") from exc
        for spans in self._spans:
            for partition, start, end in zip(*(c.to_pylist() for c in spans.columns), strict=True):
                self.tracker.mark_done(partition, start, end)
        self._spans.clear()
        offsets = self.tracker.committable()
        try:
            commit_offsets(self.committer, self.topic, offsets, self.client)
        except KafkaError as exc:
            raise CheckpointFailed(f"offsets {offsets} not committed: {exc}") from exc
        return offsets
