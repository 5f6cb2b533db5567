"""The sale-opening draw: reproducible from the revealed seed, a permutation, blind to the
order joiners are listed in, FCFS after the window, and bound to the commitment."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation.fairness import lottery
from reservation.fairness.lottery import CommitmentMismatch, Joiner, LotteryError

WINDOW_ENDS = 10_000

seeds = st.binary(min_size=32, max_size=32)


@st.composite
def joiner_lists(draw: st.DrawFn) -> list[Joiner]:
    ids = draw(
        st.lists(
            st.text(alphabet="0123456789abcdef", min_size=1, max_size=32), unique=True, max_size=40
        )
    )
    return [
        Joiner(jid, arrival=i, joined_ms=draw(st.integers(0, 2 * WINDOW_ENDS)))
        for i, jid in enumerate(ids, start=1)
    ]


def test_worked_example_of_the_docs() -> None:
    """The example in docs/fairness.md, pinned: a change of the rule fails here."""
    seed = bytes(range(32))
    assert lottery.commitment(seed) == (
        "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    )
    ids = [lottery.join_id(b"demo-key", "sale-G1-20270101", f"acct{i}") for i in range(1, 6)]
    assert ids == [
        "34a551766591a6006702f73ce3d16419",
        "f021cb5644f63c890644447ef8b69ff0",
        "ee8c7c0cc7f4f65ad4b138fc37af631a",
        "35d67566679f7592b7b59b51ba50af6b",
        "670b205971b86e92537fec54ac01a348",
    ]
    joiners = [
        Joiner(ids[0], 1, 1_000),
        Joiner(ids[1], 2, 1_500),
        Joiner(ids[2], 3, 9_000),
        Joiner(ids[3], 4, 10_000),  # the window ends at 10 000: this one is FCFS
        Joiner(ids[4], 5, 10_400),
    ]
    order = lottery.verify_draw(lottery.commitment(seed), seed, joiners, WINDOW_ENDS)
    assert order == [ids[1], ids[0], ids[2], ids[3], ids[4]]
    # ids[4] draws better than ids[3] but came later: after the window, arrival decides.
    assert lottery.draw_key(seed, ids[4]) < lottery.draw_key(seed, ids[3])
    # The rule needs nothing but SHA-256 to recompute.
    assert lottery.draw_key(seed, ids[1]) == hashlib.sha256(seed + ids[1].encode()).hexdigest()
    assert lottery.joiners_digest(joiners) == (
        "4e16b7767aeccc6c381a36d1c333d3f516f38e38135cc09d9e2cae3b72c06b9e"
    )
    assert lottery.positions(order)[ids[1]] == 1


@given(seeds, joiner_lists())
def test_reproducible_and_a_permutation(seed: bytes, joiners: list[Joiner]) -> None:
    order = lottery.draw_order(seed, joiners, WINDOW_ENDS)
    assert order == lottery.draw_order(seed, list(joiners), WINDOW_ENDS)
    assert sorted(order) == sorted(j.join_id for j in joiners)
    assert len(order) == len(joiners)


@given(seeds, joiner_lists(), st.randoms(use_true_random=False))
def test_listing_order_does_not_matter(
    seed: bytes, joiners: list[Joiner], rnd: random.Random
) -> None:
    shuffled = list(joiners)
    rnd.shuffle(shuffled)
    assert lottery.draw_order(seed, shuffled, WINDOW_ENDS) == lottery.draw_order(
        seed, joiners, WINDOW_ENDS
    )


@given(seeds, joiner_lists())
def test_window_drawn_then_fcfs(seed: bytes, joiners: list[Joiner]) -> None:
    order = lottery.draw_order(seed, joiners, WINDOW_ENDS)
    window = {j.join_id for j in joiners if j.joined_ms < WINDOW_ENDS}
    by_id = {j.join_id: j for j in joiners}
    # Every window joiner comes before every later one.
    assert set(order[: len(window)]) == window
    drawn = order[: len(window)]
    assert drawn == sorted(drawn, key=lambda jid: lottery.draw_key(seed, jid))
    later = order[len(window) :]
    assert [by_id[jid].arrival for jid in later] == sorted(by_id[jid].arrival for jid in later)


@given(seeds, seeds, joiner_lists())
def test_a_different_seed_is_refused(seed: bytes, other: bytes, joiners: list[Joiner]) -> None:
    published = lottery.commitment(seed)
    assert lottery.verify_draw(published, seed, joiners, WINDOW_ENDS) == lottery.draw_order(
        seed, joiners, WINDOW_ENDS
    )
    if other != seed:
        with pytest.raises(CommitmentMismatch):
            lottery.verify_draw(published, other, joiners, WINDOW_ENDS)


def test_the_seed_decides_the_window_order() -> None:
    joiners = [Joiner(f"{i:032x}", i, 0) for i in range(50)]
    orders = {tuple(lottery.draw_order(bytes([n]) * 32, joiners, WINDOW_ENDS)) for n in range(5)}
    assert len(orders) == 5


def test_bad_inputs() -> None:
    with pytest.raises(LotteryError):
        lottery.draw_order(b"\0" * 32, [Joiner("a", 1, 0), Joiner("a", 2, 1)], WINDOW_ENDS)
    with pytest.raises(LotteryError):
        lottery.commitment(b"short")
    with pytest.raises(LotteryError):
        lottery.seed_from_hex("00" * 31)
    seed = lottery.new_seed()
    assert lottery.seed_from_hex(seed.hex()) == seed
    assert Joiner.from_dict(Joiner("ab", 3, 7).to_dict()) == Joiner("ab", 3, 7)
    with pytest.raises(LotteryError):
        Joiner.from_dict({"join_id": "ab", "arrival": "3", "joined_ms": 7})


def test_join_ids_are_per_sale_and_per_account() -> None:
    key = b"k"
    assert lottery.join_id(key, "s1", "a1") != lottery.join_id(key, "s2", "a1")
    assert lottery.join_id(key, "s1", "a1") != lottery.join_id(key, "s1", "a2")
    assert lottery.join_id(key, "s1", "a1") != lottery.join_id(b"other", "s1", "a1")
    assert len(lottery.join_id(key, "s1", "a1")) == 32


def _log(*entries: tuple[int, str, dict[str, object]]) -> list[dict[str, object]]:
    return [{"seq": seq, "kind": kind, "payload": payload} for seq, kind, payload in entries]


def test_verify_from_log_wants_commitment_joiners_seed_in_that_order() -> None:
    seed = bytes(range(32))
    joiners = [Joiner(f"{i:032x}", i, i) for i in range(5)]
    c = lottery.commitment_payload(lottery.commitment(seed), 3)
    j = lottery.joiners_payload(joiners)
    s = lottery.seed_payload(seed)
    good = _log((1, "lottery_commitment", c), (5, "lottery_joiners", j), (9, "lottery_seed", s))
    assert lottery.verify_from_log(good, joiners) == lottery.draw_order(seed, joiners, 3)
    late = _log((6, "lottery_commitment", c), (5, "lottery_joiners", j), (9, "lottery_seed", s))
    with pytest.raises(LotteryError, match="in that order"):
        lottery.verify_from_log(late, joiners)
    other = lottery.seed_payload(bytes(32))
    with pytest.raises(CommitmentMismatch):
        lottery.verify_from_log(
            _log(
                (1, "lottery_commitment", c), (2, "lottery_joiners", j), (3, "lottery_seed", other)
            ),
            joiners,
        )
    twice = [*good, {"seq": 10, "kind": "lottery_seed", "payload": s}]
    with pytest.raises(LotteryError, match="2 lottery_seed"):
        lottery.verify_from_log(twice, joiners)
    with pytest.raises(LotteryError):
        Joiner.from_dict({"join_id": "ab", "arrival": True, "joined_ms": 7})
