"""Ack bookkeeping for the consume loop: a delivery may be acked once every message its
outcome published (retry copy, dead letter, event) is confirmed by the broker.

Acks go out as few frames as possible: deliveries arrive with rising tags and mostly finish in
order, so one `basic.ack(multiple=True)` covers the longest finished run starting at the
oldest open delivery. A delivery still open (not handled, or waiting for a confirm) stops the
run, so a multiple ack never covers work that is not done.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Ticket:
    """One delivery waiting for `remaining` confirms; `failed` once the broker refused one."""

    delivery_tag: int
    remaining: int
    failed: bool = False


class AckTracker:
    def __init__(self) -> None:
        # Both are taken from the front as they are added at the back, a prefetch window's worth
        # apart: OrderedDicts, since a dict's iteration walks over every entry deleted at its
        # front since it was last resized (2.7 us per message at a window of 4000, 0.4 here).
        self._open: OrderedDict[int, bool] = OrderedDict()  # delivery tag → finished; in tag order
        self._unconfirmed: OrderedDict[int, Ticket] = OrderedDict()  # publish sequence → its ticket
        self._sequence = 0

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    def opened(self, delivery_tag: int) -> None:
        self._open[delivery_tag] = False

    def published(self, ticket: Ticket) -> None:
        self._sequence += 1
        self._unconfirmed[self._sequence] = ticket

    def confirmed(self, sequence: int, *, multiple: bool, ok: bool) -> list[Ticket]:
        """Tickets whose last confirm this was."""
        if multiple:
            sequences = []
            for found in self._unconfirmed:  # insertion order is publish order
                if found > sequence:
                    break
                sequences.append(found)
        else:
            sequences = [sequence]
        finished = []
        for found in sequences:
            ticket = self._unconfirmed.pop(found, None)
            if ticket is None:
                continue
            ticket.failed = ticket.failed or not ok
            ticket.remaining -= 1
            if ticket.remaining == 0:
                finished.append(ticket)
        return finished

    def finished(self, delivery_tag: int) -> None:
        if delivery_tag in self._open:
            self._open[delivery_tag] = True

    def forget(self, delivery_tag: int) -> None:
        """The delivery was settled another way (nacked back to the queue)."""
        self._open.pop(delivery_tag, None)

    def ackable(self) -> int | None:
        """The highest tag of the finished run at the front, removed from the books; ack it with
        `multiple=True`. None when the oldest open delivery is not finished."""
        upto = None
        while self._open:
            tag, done = next(iter(self._open.items()))
            if not done:
                break
            del self._open[tag]
            upto = tag
        return upto
