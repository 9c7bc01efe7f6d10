"""Which input offsets may be committed: a partition's offset moves past a
message only once that message and every earlier one of its partition had
their output (or dead letter) acknowledged by wherever it was sent.

Messages are tracked by the run of offsets one batch took from one partition
(a :class:`Ticket`), not one by one: a batch's outputs are acknowledged out of
order across output partitions, and only the whole batch being acknowledged
matters for the commit. Pure Python, without a Kafka client, so that its one
promise (never commit past an unacknowledged message) is tested on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Optional

__all__ = ["OffsetTracker", "Ticket"]


class Ticket:
    """Offsets ``first``..``last`` of one partition, taken by one batch
    (``messages`` of them, ``size`` bytes of values): in flight until
    :meth:`OffsetTracker.done`."""

    __slots__ = ("partition", "first", "last", "messages", "size", "acked")

    def __init__(self, partition: Hashable, first: int, last: int, messages: int, size: int):
        self.partition = partition
        self.first = first
        self.last = last
        self.messages = messages
        self.size = size
        self.acked = False

    def __repr__(self) -> str:
        state = "acked" if self.acked else "in flight"
        return f"Ticket({self.partition!r}, {self.first}..{self.last}, {state})"


class _Partition:
    __slots__ = ("tickets", "safe")

    def __init__(self) -> None:
        #: Unfinished tickets and the finished ones behind them, in offset order.
        self.tickets: deque[Ticket] = deque()
        #: The next offset to commit: every message before it is done.
        self.safe: Optional[int] = None


class OffsetTracker:
    """The messages in flight, per partition, and the offset each partition
    may commit (the Kafka convention: the offset of the next message to read).

    ``take`` must see a partition's offsets in increasing order (as a consumer
    reads them); ``done`` may come in any order. ``in_flight`` and
    ``in_flight_bytes`` count what was taken and is not done yet.
    """

    def __init__(self) -> None:
        self._partitions: dict[Hashable, _Partition] = {}
        self.in_flight = 0
        self.in_flight_bytes = 0

    def take(self, partition: Hashable, first: int, last: int, messages: int, size: int) -> Ticket:
        if last < first or messages < 1:
            raise ValueError(f"an empty run of offsets: {first}..{last}, {messages} messages")
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition()
        floor = state.tickets[-1].last + 1 if state.tickets else state.safe
        if floor is not None and first < floor:
            raise ValueError(f"offset {first} of {partition!r} is not after those taken before")
        ticket = Ticket(partition, first, last, messages, size)
        state.tickets.append(ticket)
        self.in_flight += messages
        self.in_flight_bytes += size
        return ticket

    def done(self, ticket: Ticket) -> None:
        """The ticket's messages are acknowledged (a second call is ignored)."""
        if ticket.acked:
            return
        ticket.acked = True
        self.in_flight -= ticket.messages
        self.in_flight_bytes -= ticket.size
        state = self._partitions.get(ticket.partition)
        if state is None:
            return  # the partition was dropped meanwhile
        tickets = state.tickets
        while tickets and tickets[0].acked:
            state.safe = tickets.popleft().last + 1

    def position(self, partition: Hashable) -> Optional[int]:
        """The offset ``partition`` may commit: every message before it is
        done, and none at or after it is known to be. None before any
        message of it is done."""
        state = self._partitions.get(partition)
        return None if state is None else state.safe

    def positions(self) -> dict[Hashable, int]:
        """:meth:`position` of every partition that has one."""
        return {p: s.safe for p, s in self._partitions.items() if s.safe is not None}

    def pending(self, partition: Hashable) -> int:
        """Messages of ``partition`` taken and not done."""
        state = self._partitions.get(partition)
        if state is None:
            return 0
        return sum(t.messages for t in state.tickets if not t.acked)

    def drop(self, partition: Hashable) -> None:
        """Forget a partition (revoked from this consumer): its tickets no
        longer count in flight, and acknowledgements that still come for them
        move nothing."""
        state = self._partitions.pop(partition, None)
        if state is None:
            return
        for ticket in state.tickets:
            if not ticket.acked:
                ticket.acked = True
                self.in_flight -= ticket.messages
                self.in_flight_bytes -= ticket.size
