"""A batch's offsets are released only once every one of its sends is
acknowledged, and never after a failed one."""

from __future__ import annotations

import pytest

pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")

from packflow.kafka.offsets import OffsetTracker  # noqa: E402
from packflow.kafka.sink import BatchAck, Delivery  # noqa: E402


class Refused:
    def str(self) -> str:
        return "Broker: Message size too large"


def _batch(tracker: OffsetTracker, delivery: Delivery, sends: int) -> BatchAck:
    ack = BatchAck(
        tracker, [tracker.take(0, 0, 9, 10, 100), tracker.take(1, 5, 9, 5, 50)], delivery
    )
    ack.expect(sends)
    return ack


def test_the_tickets_wait_for_every_acknowledgement_and_the_seal():
    tracker, delivery = OffsetTracker(), Delivery()
    ack = _batch(tracker, delivery, 3)
    ack.output(None)
    ack.dead_letter(None)
    ack.seal()
    assert tracker.in_flight == 15 and tracker.positions() == {}
    ack.output(None)
    assert tracker.in_flight == 0 and tracker.positions() == {0: 10, 1: 10}
    assert (delivery.produced, delivery.dead_lettered, delivery.failure) == (2, 1, None)


def test_acknowledgements_before_the_seal_release_nothing():
    # librdkafka may report while the batch is still being sent (a full queue
    # is served mid-batch): the seal keeps the count above zero until then.
    tracker, delivery = OffsetTracker(), Delivery()
    ack = _batch(tracker, delivery, 2)
    ack.output(None)
    ack.output(None)
    assert tracker.in_flight == 15
    ack.seal()
    assert tracker.in_flight == 0


def test_a_failed_send_keeps_the_batch_uncommitted():
    tracker, delivery = OffsetTracker(), Delivery()
    ack = _batch(tracker, delivery, 2)
    ack.output(Refused())
    ack.output(None)
    ack.seal()
    assert tracker.in_flight == 15 and tracker.positions() == {}
    assert delivery.failure == "Broker: Message size too large"
    assert delivery.produced == 1
