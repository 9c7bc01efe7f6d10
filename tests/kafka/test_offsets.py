"""The offset tracker's one promise: a partition's committable offset never
passes a message whose output is not acknowledged, and reaches the end once
all are."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from packflow.kafka.offsets import OffsetTracker


class TrackerMachine(RuleBasedStateMachine):
    """Batches taken from three partitions (offsets with gaps, as compaction
    leaves them), acknowledged in any order, partitions dropped on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = OffsetTracker()
        self.next: dict[int, int] = {}
        self.tickets: dict[int, list] = {}
        self.last_position: dict[int, int] = {}

    @rule(
        partition=st.integers(0, 2),
        gap=st.integers(0, 3),
        messages=st.integers(1, 5),
        holes=st.integers(0, 3),
        size=st.integers(0, 100),
    )
    def take(self, partition, gap, messages, holes, size):
        first = self.next.get(partition, 0) + gap
        last = first + messages - 1 + holes
        ticket = self.tracker.take(partition, first, last, messages, size)
        self.next[partition] = last + 1
        self.tickets.setdefault(partition, []).append(ticket)

    @precondition(lambda self: any(not t.acked for ts in self.tickets.values() for t in ts))
    @rule(data=st.data())
    def acknowledge(self, data):
        open_ = [t for ts in self.tickets.values() for t in ts if not t.acked]
        self.tracker.done(data.draw(st.sampled_from(open_)))

    @precondition(lambda self: bool(self.tickets))
    @rule(data=st.data())
    def drop(self, data):
        partition = data.draw(st.sampled_from(sorted(self.tickets)))
        self.tracker.drop(partition)
        del self.tickets[partition]
        self.last_position.pop(partition, None)
        assert self.tracker.position(partition) is None

    @invariant()
    def never_past_an_unacknowledged_message(self):
        for partition, tickets in self.tickets.items():
            position = self.tracker.position(partition)
            for ticket in tickets:
                if not ticket.acked:
                    assert position is None or position <= ticket.first
            # Exactly the end of the acknowledged prefix.
            prefix = []
            for ticket in tickets:
                if not ticket.acked:
                    break
                prefix.append(ticket)
            assert position == (prefix[-1].last + 1 if prefix else None)

    @invariant()
    def positions_only_move_forward(self):
        for partition, position in self.tracker.positions().items():
            assert position >= self.last_position.get(partition, position)
            self.last_position[partition] = position

    @invariant()
    def in_flight_counts_what_is_open(self):
        open_ = [t for ts in self.tickets.values() for t in ts if not t.acked]
        assert self.tracker.in_flight == sum(t.messages for t in open_)
        assert self.tracker.in_flight_bytes == sum(t.size for t in open_)
        for partition, tickets in self.tickets.items():
            assert self.tracker.pending(partition) == sum(
                t.messages for t in tickets if not t.acked
            )


TestTracker = TrackerMachine.TestCase


def test_all_acknowledged_commits_past_the_last_message():
    tracker = OffsetTracker()
    a = tracker.take(0, 10, 19, 10, 100)
    b = tracker.take(0, 25, 30, 4, 40)
    tracker.done(b)
    assert tracker.position(0) is None  # 10..19 still in flight
    tracker.done(a)
    assert tracker.position(0) == 31
    assert (tracker.in_flight, tracker.in_flight_bytes) == (0, 0)


def test_an_acknowledgement_after_the_partition_was_dropped_moves_nothing():
    tracker = OffsetTracker()
    ticket = tracker.take(3, 0, 4, 5, 50)
    tracker.drop(3)
    assert tracker.in_flight == 0
    tracker.done(ticket)
    assert tracker.position(3) is None and tracker.in_flight == 0


@pytest.mark.parametrize(
    ("first", "last", "messages"), [(9, 8, 1), (7, 7, 0), (3, 8, 2), (6, 9, 1)]
)
def test_offsets_must_move_forward(first, last, messages):
    tracker = OffsetTracker()
    tracker.take(0, 4, 6, 3, 0)
    with pytest.raises(ValueError):
        tracker.take(0, first, last, messages, 0)
