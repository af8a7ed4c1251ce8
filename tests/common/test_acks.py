"""The ack books: nothing is acked before its confirms, and finished runs go out as one ack."""

from __future__ import annotations

from cartero_common.consume.acks import AckTracker, Ticket


def test_acks_wait_for_every_confirm_and_cover_only_the_finished_front() -> None:
    books = AckTracker()
    tickets = [Ticket(tag, remaining=2) for tag in (1, 2, 3)]
    for ticket in tickets:
        books.opened(ticket.delivery_tag)
        books.published(ticket)
        books.published(ticket)
    # Confirms for delivery 1's two publishes and the first of delivery 2's.
    done = books.confirmed(3, multiple=True, ok=True)
    assert done == [tickets[0]]
    books.finished(1)
    assert books.ackable() == 1
    # Delivery 3 finishes before delivery 2: no multiple ack may cover 2 yet.
    assert books.confirmed(6, multiple=False, ok=True) == []
    assert books.confirmed(5, multiple=False, ok=True) == [tickets[2]]
    books.finished(3)
    assert books.ackable() is None
    assert books.confirmed(4, multiple=False, ok=True) == [tickets[1]]
    books.finished(2)
    assert books.ackable() == 3
    assert books.unconfirmed == 0 and books.ackable() is None


def test_a_refused_publish_fails_its_ticket_and_a_forgotten_delivery_unblocks_the_run() -> None:
    books = AckTracker()
    first, second = Ticket(7, remaining=1), Ticket(8, remaining=1)
    for ticket in (first, second):
        books.opened(ticket.delivery_tag)
        books.published(ticket)
    (refused,) = books.confirmed(1, multiple=False, ok=False)
    assert refused.failed
    books.confirmed(2, multiple=False, ok=True)
    books.finished(8)
    assert books.ackable() is None  # 7 is still open
    books.forget(7)  # nacked back to the queue
    assert books.ackable() == 8
