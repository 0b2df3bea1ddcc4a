"""The reservation book: expiry, extension, release, and GPUs held for one spawn are never given to
another."""

from __future__ import annotations

import pytest

from spawner.core.model import Candidate, NoCapacity, PlacementRequest, Reservation
from spawner.placement.rank import availability, place, reserve
from spawner.placement.reservations import ReservationBook
from tests.spawner.placement.test_rank import A100, node, onprem


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(rid: str, expires: float, *, node_: str | None = "dgx-1", gpus: int = 1) -> Reservation:
    return Reservation(rid, "onprem", node_, "gpu", gpus, 0.0, 0, expires)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(clock: Clock) -> ReservationBook:
    return ReservationBook(ttl=180.0, clock=clock)


def test_a_reservation_lives_until_it_expires(book: ReservationBook, clock: Clock) -> None:
    book.add(held("r1", 160.0))
    book.add(held("r2", 200.0))
    assert [r.id for r in book.active()] == ["r1", "r2"] and len(book) == 2
    clock.now = 159.9
    assert book.get("r1") is not None
    clock.now = 160.0  # expiry is exclusive: at its time it is gone
    assert [r.id for r in book.active()] == ["r2"] and book.get("r1") is None and len(book) == 1
    clock.now = 1000.0
    assert book.active() == () and len(book) == 0


def test_extend_restarts_the_clock_from_now(book: ReservationBook, clock: Clock) -> None:
    book.add(held("r1", 160.0))
    clock.now = 150.0
    renewed = book.extend("r1")
    assert renewed is not None and renewed.expires == 330.0  # now + ttl
    assert book.get("r1") == renewed
    assert book.extend("r1", 5.0) == held("r1", 155.0)  # an explicit length, from now
    clock.now = 155.0
    assert book.extend("r1") is None  # expired meanwhile: nothing to extend, nothing comes back
    assert book.active() == ()


def test_extend_and_release_of_unknown_ids(book: ReservationBook) -> None:
    assert book.extend("nope") is None
    assert book.release("nope") is False
    assert book.active() == ()


def test_release_once(book: ReservationBook) -> None:
    book.add(held("r1", 160.0))
    assert book.release("r1") is True
    assert book.release("r1") is False
    assert book.extend("r1") is None and book.active() == ()


def test_a_live_id_is_held_once(book: ReservationBook, clock: Clock) -> None:
    book.add(held("r1", 160.0, gpus=2))
    with pytest.raises(ValueError, match="reservation r1 is already held"):
        book.add(held("r1", 170.0, gpus=1))
    assert book.active() == (held("r1", 160.0, gpus=2),)
    clock.now = 160.0
    book.add(held("r1", 400.0))  # the old one expired: the id is free again
    assert book.active() == (held("r1", 400.0),)


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan")])
def test_a_book_needs_a_positive_ttl(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl of more than 0 seconds"):
        ReservationBook(ttl=ttl)


@pytest.mark.parametrize("seconds", [0.0, -5.0])
def test_extend_needs_positive_seconds(book: ReservationBook, seconds: float) -> None:
    book.add(held("r1", 160.0))
    with pytest.raises(ValueError, match="more than 0 seconds"):
        book.extend("r1", seconds)
    assert book.get("r1") == held("r1", 160.0)


def test_the_same_gpu_is_never_given_twice(book: ReservationBook, clock: Clock) -> None:
    """Three free A100s: place and reserve as the service does; each GPU goes to one spawn, and comes
    back when its reservation is released or expires."""
    inventory = [onprem(node("dgx-1", used=6), node("dgx-2", used=7))]

    def place_one(user: str) -> Candidate | NoCapacity:
        request = PlacementRequest(user, 1, A100)
        result = place(request, inventory, {}, book.active(), now=clock())
        if isinstance(result, NoCapacity):
            return result
        book.add(reserve(result[0], request, clock(), book.ttl, reservation_id=f"r-{user}"))
        return result[0]

    first = [place_one(u) for u in ("ann", "bob", "cid")]
    assert [c.preferred_node for c in first if isinstance(c, Candidate)] == ["dgx-2", "dgx-1", "dgx-1"]
    assert isinstance(place_one("dan"), NoCapacity)
    free = availability(inventory, book.active())["onprem"][0]
    assert (free.total, free.free, free.largest_free) == (16, 0, 0)

    assert book.release("r-bob")
    again = place_one("eve")
    assert isinstance(again, Candidate) and again.preferred_node == "dgx-1"
    assert isinstance(place_one("fay"), NoCapacity)

    clock.now += book.ttl  # every reservation expires: all three GPUs are free again
    assert availability(inventory, book.active())["onprem"][0].free == 3
