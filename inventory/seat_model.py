"""A pure-Python reference of the seat inventory: the same answers as the Lua engine, no I/O.

The model keeps one pattern per seat and derives everything else (buckets, gaps, 余票) by
brute force, so it is short enough to trust; the stateful test drives it and the engine with
the same operations and compares every seat. It also owns the domain vocabulary the engine
returns (:class:`SeatSpec`, :class:`SeatRef`, :class:`SeatHold`, ...) and the allocation rule,
:func:`plan_seats`, which ``seat_hold.lua`` implements step for step.

Rules, in plain words:
- A hold takes 1-5 seats for the same trip, all or nothing, and one passenger per seat.
- Always pick seats by best fit (see :func:`plan_seats`); never sell a seat-segment twice.
- A passenger has at most one live ticket (held or confirmed) per run.
- A hold is live while ``now_ms < deadline_ms``; from the deadline on it may only expire.
- Only once: every hold returns its segments exactly once (cancel, expire or change).
- A 改签 hold (``change_of``) is decided at the old ticket: commit there first, then the new
  hold is confirmed; abort there first, then the new hold may be released.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from inventory.errors import HoldNotLive, NotOwner
from inventory.keys import Keys
from inventory.seat_codes import ChangeAborted, SeatCode, error_for
from inventory.seat_keys import SeatKeys
from inventory.segments import (
    Remaining,
    check_trip,
    containing_gap,
    empty_pattern,
    gap_counts,
    gap_rank,
    occupy,
    popcount,
    release,
    remaining_all,
)

MAX_PARTY = 5
SAMPLE = 16  # seats looked at per pattern bucket when adjacency or a wish matters
MAX_BUCKETS = 3  # pattern buckets compared before settling for the best group seen
PATTERNS_PER_GAP = 5  # >= MAX_PARTY and >= MAX_BUCKETS, so the walk never runs short

# Seat letters per class and the position each one is (window / aisle / middle; berths).
POSITIONS: dict[str, dict[str, str]] = {
    "business": {"A": "window", "C": "aisle", "F": "window"},
    "first": {"A": "window", "C": "aisle", "D": "aisle", "F": "window"},
    "second": {"A": "window", "B": "middle", "C": "aisle", "D": "aisle", "F": "window"},
    "sleeper": {"U": "upper", "M": "middle", "L": "lower"},
}
WISHES = frozenset(kind for letters in POSITIONS.values() for kind in letters.values())
_FORBIDDEN = frozenset("|;,:")  # separators of the stored records


def position_kind(seat_class: str, letter: str) -> str:
    try:
        return POSITIONS[seat_class][letter]
    except KeyError:
        raise ValueError(f"no seat letter {letter!r} in class {seat_class!r}") from None


class SeatSpec(NamedTuple):
    """One seat of a published seat map: coach, row (compartment for berths), letter."""

    coach: str
    row: int
    letter: str


class SeatRef(NamedTuple):
    """A sold seat as the citizen sees it: coach, seat label (``"07F"``), position."""

    coach: str
    seat: str
    position: str


@dataclass(frozen=True, slots=True)
class SeatHold:
    hold_id: str
    run_id: str
    seat_class: str
    seats: tuple[SeatRef, ...]  # in passenger order
    segments: tuple[int, int]
    deadline_ms: int
    wish_met: bool
    state: str = "held"
    replayed: bool = False  # the stored first answer of an idempotent retry


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of confirm / cancel / expire / a change decision."""

    hold_id: str
    state: str  # held, confirmed, cancelled, expired, changed, aborted
    changed: bool  # False: a retry or nothing left to do, the state was already final


@dataclass(frozen=True, slots=True)
class HoldInfo:
    hold_id: str
    account_id: str
    run_id: str
    seat_class: str
    segments: tuple[int, int]
    seats: tuple[SeatRef, ...]
    passengers: tuple[str, ...]
    state: str
    deadline_ms: int
    change_of: str
    changed_to: str


# --- the seat map as stored ----------------------------------------------------------------


def seat_tail(ordinal: int, spec: SeatSpec, kind: str) -> str:
    """The static part of a seat's record; sorts by ordinal because the ordinal leads."""
    return f"{ordinal:05d}|{spec.coach}|{spec.row}|{spec.letter}|{kind}"


def ref_from_tail(tail: str) -> SeatRef:
    _, coach, row, letter, kind = tail.split("|")
    return SeatRef(coach, f"{int(row):02d}{letter}", kind)


def seat_map(seat_class: str, seats: Iterable[SeatSpec]) -> list[str]:
    """Validated tails in ordinal order: coaches in first-seen order, then row, then letter,
    so neighbouring ordinals are neighbouring seats (the adjacency rule relies on it)."""
    letters = POSITIONS.get(seat_class)
    if letters is None:
        raise ValueError(f"unknown seat class {seat_class!r}")
    order = list(letters)
    coaches: dict[str, int] = {}
    specs = list(seats)
    if not specs or len(specs) > 99_999:
        raise ValueError("a seat map has 1..99999 seats")
    if len(set(specs)) != len(specs):
        raise ValueError("a seat appears twice in the seat map")
    for spec in specs:
        if not spec.coach or _FORBIDDEN & set(spec.coach) or spec.row < 0:
            raise ValueError(f"bad seat {spec!r}")
        position_kind(seat_class, spec.letter)
        coaches.setdefault(spec.coach, len(coaches))
    specs.sort(key=lambda s: (coaches[s.coach], s.row, order.index(s.letter)))
    return [
        seat_tail(i, spec, position_kind(seat_class, spec.letter))
        for i, spec in enumerate(specs, start=1)
    ]


def map_fingerprint(nseg: int, seat_class: str, tails: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{nseg}\n{seat_class}\n".encode())
    for tail in tails:
        digest.update(tail.encode() + b"\n")
    return digest.hexdigest()[:32]


def hold_fingerprint(
    run_id: str,
    seat_class: str,
    a: int,
    b: int,
    passengers: Sequence[str],
    wish: str,
    change_of: str,
) -> str:
    """What an idempotency key promises: the same key always means this same request."""
    text = "\n".join([run_id, seat_class, str(a), str(b), ",".join(passengers), wish, change_of])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_hold_request(
    nseg: int, a: int, b: int, passengers: Sequence[str], wish: str, deadline_ms: int, now_ms: int
) -> None:
    """The argument checks both the engine (before calling Lua) and the model make."""
    check_trip(nseg, a, b)
    if not 1 <= len(passengers) <= MAX_PARTY:
        raise ValueError(f"a hold is for 1..{MAX_PARTY} passengers")
    if len(set(passengers)) != len(passengers) or any(
        not p or _FORBIDDEN & set(p) for p in passengers
    ):
        raise ValueError("passenger ids must be distinct, non-empty, without separators")
    if wish and wish not in WISHES:
        raise ValueError(f"unknown position wish {wish!r}")
    if deadline_ms <= now_ms:
        raise ValueError("the payment deadline must be in the future")


# --- allocation ----------------------------------------------------------------------------


class _Seat(NamedTuple):
    ordinal: int
    coach: str
    row: int
    kind: str


def _group_score(group: Sequence[_Seat], wish: str) -> tuple[int, int, int]:
    """Higher is better: one coach, then fewest rows spanned, then the wish met (one seat at
    the wished position is enough: the party sits together around it)."""
    same = all(s.coach == group[0].coach for s in group)
    span = max(s.row for s in group) - min(s.row for s in group) if same else 1000
    met = not wish or any(s.kind == wish for s in group)
    return int(same), -span, int(met)


_PERFECT = (1, 0, 1)


def plan_seats(
    masks: Sequence[str], seats: Sequence[_Seat], a: int, b: int, n: int, wish: str
) -> tuple[list[int], bool] | None:
    """Which seats (indices into ``seats``) a hold of ``n`` for ``[a, b)`` takes, and whether
    the wish was met; ``None`` when fewer than ``n`` seats are free for the trip.

    1. Candidate gaps: free gaps containing the trip, ranked by :func:`gap_rank` (borders,
       then the busiest pattern in the gap, then the tightest gap, then its start).
    2. Walk the gaps' patterns (busiest first, ties: greatest pattern string first) and
       sample each pattern's bucket: its lowest-ordinal seats (1 when any seat will do).
    3. Stop at a perfect group (one coach, one row, wish met), or once MAX_BUCKETS buckets
       are seen and they hold at least ``n`` seats. Take the best group of ``n`` consecutive
       sampled seats of one bucket (earlier bucket and earlier seats win ties); if no bucket
       has ``n``, take seats from the buckets in walk order.
    """
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, mask in enumerate(masks):
        buckets[mask].append(i)  # already in ordinal order
    by_gap: dict[tuple[int, int], list[str]] = defaultdict(list)
    for pattern in buckets:
        gap = containing_gap(pattern, a, b)
        if gap is not None:
            by_gap[gap].append(pattern)
    ranked = sorted(by_gap, key=lambda g: gap_rank(g, a, b, max(popcount(p) for p in by_gap[g])))
    k = 1 if n == 1 and not wish else SAMPLE
    samples: list[list[_Seat]] = []
    total = 0
    best: tuple[tuple[int, int, int], list[_Seat]] | None = None
    done = False
    for gap in ranked:
        patterns = sorted(by_gap[gap], key=lambda p: (popcount(p), p), reverse=True)
        for pattern in patterns[:PATTERNS_PER_GAP]:
            sample = [seats[i] for i in buckets[pattern][:k]]
            samples.append(sample)
            total += len(sample)
            for start in range(len(sample) - n + 1):
                group = sample[start : start + n]
                score = _group_score(group, wish)
                if best is None or score > best[0]:
                    best = (score, group)
            if (best is not None and best[0] == _PERFECT) or (
                len(samples) >= MAX_BUCKETS and total >= n
            ):
                done = True
                break
        if done:
            break
    if total < n:
        return None
    chosen = best[1] if best is not None else [s for sample in samples for s in sample][:n]
    met = not wish or any(s.kind == wish for s in chosen)
    return [s.ordinal for s in chosen], met


# --- the model -----------------------------------------------------------------------------


@dataclass
class _Unit:
    nseg: int
    fingerprint: str
    tails: list[str]
    seats: list[_Seat]
    masks: list[str]


@dataclass
class _Hold:
    hold_id: str
    account: str
    run: str
    seat_class: str
    a: int
    b: int
    seats: list[int]  # indices into the unit's seats
    passengers: tuple[str, ...]
    deadline_ms: int
    change_of: str
    fingerprint: str
    wish_met: bool
    state: str = "held"
    changed_to: str = ""
    aborted: set[str] = field(default_factory=set)
    gone: dict[int, int] = field(default_factory=dict)  # place (from 1) -> released at (ms)


class SeatModel:
    """The seat inventory of any number of runs, in memory. Methods mirror SeatEngine's,
    synchronously, with ``now_ms`` always explicit; refusals raise the same typed errors."""

    def __init__(self, keys: Keys | None = None, *, hold_ms: int = 15 * 60_000) -> None:
        self.seat_keys = SeatKeys(keys or Keys())
        self.hold_ms = hold_ms
        self.units: dict[tuple[str, str], _Unit] = {}
        self.holds: dict[str, _Hold] = {}
        self.pax: dict[str, dict[str, str]] = defaultdict(dict)  # run -> passenger -> hold
        self.events: list[tuple[str, str]] = []  # (type, hold id), the outbox in order

    # publish ------------------------------------------------------------------------------
    def publish(self, run_id: str, seat_class: str, nseg: int, seats: Iterable[SeatSpec]) -> bool:
        check_trip(nseg, 0, nseg)
        tails = seat_map(seat_class, seats)
        fingerprint = map_fingerprint(nseg, seat_class, tails)
        unit = self.units.get((run_id, seat_class))
        if unit is not None:
            if unit.fingerprint != fingerprint:
                raise error_for(SeatCode.MAP_MISMATCH)
            return False
        parsed = [t.split("|") for t in tails]
        self.units[(run_id, seat_class)] = _Unit(
            nseg,
            fingerprint,
            tails,
            [_Seat(i, c, int(r), k) for i, (_, c, r, _, k) in enumerate(parsed)],
            [empty_pattern(nseg)] * len(tails),
        )
        return True

    # hold ---------------------------------------------------------------------------------
    def hold(
        self,
        account_id: str,
        run_id: str,
        seat_class: str,
        a: int,
        b: int,
        passengers: Sequence[str],
        *,
        now_ms: int,
        idempotency_key: str,
        wish: str = "",
        deadline_ms: int | None = None,
        change_of: str = "",
    ) -> SeatHold:
        unit = self.units.get((run_id, seat_class))
        if unit is None:
            raise error_for(SeatCode.NOT_LOADED)
        deadline = now_ms + self.hold_ms if deadline_ms is None else deadline_ms
        try:
            check_hold_request(unit.nseg, a, b, passengers, wish, deadline, now_ms)
        except ValueError as exc:
            raise error_for(SeatCode.BAD_REQUEST, reason=str(exc)) from None
        fp = hold_fingerprint(run_id, seat_class, a, b, passengers, wish, change_of)
        hold_id = self.seat_keys.hold_id(run_id, account_id, idempotency_key)
        prior = self.holds.get(hold_id)
        if prior is not None:
            if prior.fingerprint != fp:
                raise error_for(SeatCode.IDEMPOTENCY_MISMATCH)
            return replace(self._answer(prior), replayed=True)
        owners = self.pax[run_id]
        for p in passengers:
            if p in owners:
                raise error_for(SeatCode.PERSON_LIMIT, passenger=p)
        plan = plan_seats(unit.masks, unit.seats, a, b, len(passengers), wish)
        if plan is None:
            raise error_for(SeatCode.NO_SEAT)
        chosen, met = plan
        for i in chosen:
            unit.masks[i] = occupy(unit.masks[i], a, b)
        h = self.holds[hold_id] = _Hold(
            hold_id, account_id, run_id, seat_class, a, b, chosen, tuple(passengers), deadline,
            change_of, fp, met,
        )  # fmt: skip
        for p in passengers:
            owners[p] = hold_id
        self.events.append(("held", hold_id))
        return self._answer(h)

    def _answer(self, h: _Hold) -> SeatHold:
        """What seat_hold answered when it made the hold (and answers to its retries)."""
        unit = self._unit(h.run, h.seat_class)
        return SeatHold(
            h.hold_id,
            h.run,
            h.seat_class,
            tuple(ref_from_tail(unit.tails[i]) for i in h.seats),
            (h.a, h.b),
            h.deadline_ms,
            h.wish_met,
        )

    # confirm ------------------------------------------------------------------------------
    def confirm(
        self, account_id: str, hold_id: str, *, now_ms: int, change_commit_of: str = ""
    ) -> Outcome:
        h = self._owned(hold_id, account_id)
        if h.state == "confirmed":
            return Outcome(hold_id, h.state, False)
        if h.state != "held":
            raise error_for(SeatCode.HOLD_NOT_LIVE, state=h.state)
        if h.change_of != change_commit_of:
            code = SeatCode.CHANGE_PENDING if not change_commit_of else SeatCode.BAD_REQUEST
            raise error_for(code)
        if not change_commit_of and now_ms >= h.deadline_ms:
            raise error_for(SeatCode.HOLD_EXPIRED)
        h.state = "confirmed"
        self.events.append(("confirmed", hold_id))
        return Outcome(hold_id, h.state, True)

    # release paths ------------------------------------------------------------------------
    def cancel(
        self, account_id: str, hold_id: str, *, now_ms: int, change_aborted: bool = False
    ) -> Outcome:
        h = self._owned(hold_id, account_id)
        if h.state == "held" and h.change_of and not change_aborted:
            raise error_for(SeatCode.CHANGE_PENDING)
        if h.state not in ("held", "confirmed"):
            return Outcome(hold_id, h.state, False)
        self._release(h, "cancelled")
        return Outcome(hold_id, h.state, True)

    def release_one(self, account_id: str, hold_id: str, place: int, *, now_ms: int) -> Outcome:
        """One passenger's seat of a confirmed party back (a per-ticket refund); never the
        party's last live seat; again: a replay. No outbox event (the caller records it)."""
        h = self._owned(hold_id, account_id)
        if h.state != "confirmed":
            raise error_for(SeatCode.HOLD_NOT_LIVE, state=h.state)
        if not 1 <= place <= len(h.passengers):
            raise error_for(SeatCode.BAD_REQUEST)
        if place in h.gone:
            return Outcome(hold_id, "released_one", False)
        if len(h.passengers) - len(h.gone) <= 1:
            raise error_for(SeatCode.BAD_REQUEST)
        unit = self._unit(h.run, h.seat_class)
        i = h.seats[place - 1]
        unit.masks[i] = release(unit.masks[i], h.a, h.b)
        del self.pax[h.run][h.passengers[place - 1]]
        h.gone[place] = now_ms
        return Outcome(hold_id, "released_one", True)

    def gone(self, hold_id: str) -> dict[int, int]:
        """The places of a hold whose seats went back one by one -> when (ms)."""
        h = self.holds.get(hold_id)
        return dict(h.gone) if h is not None else {}

    def expire_raw(self, hold_id: str, *, now_ms: int, change_aborted: bool = False) -> Outcome:
        """The ``expire`` mode of seat_release as is; :meth:`expire` is what a sweeper calls."""
        h = self.holds.get(hold_id)
        if h is None:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if h.state != "held":
            return Outcome(hold_id, h.state, False)
        if now_ms < h.deadline_ms:
            raise error_for(SeatCode.NOT_DUE)
        if h.change_of and not change_aborted:
            raise error_for(SeatCode.CHANGE_PENDING)
        self._release(h, "expired")
        return Outcome(hold_id, h.state, True)

    def decide_change(
        self, old_hold_id: str, new_hold_id: str, *, commit: bool, account_id: str, now_ms: int
    ) -> Outcome:
        """Commit (release the old ticket as changed) or abort a 改签 at the old ticket; the
        first decision stands. Abort needs no owner: the sweeper makes it for nobody."""
        h = self._owned(old_hold_id, account_id) if commit else self.holds.get(old_hold_id)
        if h is None:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if h.state == "changed":
            if h.changed_to == new_hold_id:
                return Outcome(old_hold_id, "changed", False)
            if commit:
                raise error_for(SeatCode.HOLD_NOT_LIVE, state=h.state)
        if new_hold_id in h.aborted:
            if commit:
                raise error_for(SeatCode.CHANGE_ABORTED)
            return Outcome(old_hold_id, "aborted", False)
        if not commit:
            h.aborted.add(new_hold_id)
            return Outcome(old_hold_id, "aborted", True)
        if h.state != "confirmed":
            raise error_for(SeatCode.HOLD_NOT_LIVE, state=h.state)
        h.changed_to = new_hold_id
        self._release(h, "changed")
        return Outcome(old_hold_id, "changed", True)

    # composite operations (the same steps SeatEngine takes) -------------------------------
    def expire(self, hold_id: str, *, now_ms: int) -> Outcome:
        """Expire a hold past its deadline; a pending 改签 hold is first decided at its old
        ticket: rolled forward (confirmed) if the old ticket committed, else aborted."""
        h = self.holds.get(hold_id)
        if h is None:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if h.state == "held" and now_ms < h.deadline_ms:
            raise error_for(SeatCode.NOT_DUE)
        aborted = False
        if h.state == "held" and h.change_of:
            try:
                decision = self.decide_change(
                    h.change_of, hold_id, commit=False, account_id="", now_ms=now_ms
                )
            except NotOwner:  # the old ticket is gone: it can never commit
                decision = Outcome(h.change_of, "aborted", False)
            if decision.state == "changed":
                return self.confirm(h.account, hold_id, now_ms=now_ms, change_commit_of=h.change_of)
            aborted = True
        return self.expire_raw(hold_id, now_ms=now_ms, change_aborted=aborted)

    def expire_due(self, shard: int, *, now_ms: int, limit: int = 100) -> list[Outcome]:
        due = sorted(
            (h.deadline_ms, h.hold_id)
            for h in self.holds.values()
            if h.state == "held"
            and h.deadline_ms <= now_ms
            and self.seat_keys.hold_shard(h.hold_id) == shard
        )
        return [self.expire(hold_id, now_ms=now_ms) for _, hold_id in due[:limit]]

    def change(
        self,
        account_id: str,
        old_hold_id: str,
        new_run_id: str,
        new_class: str,
        a: int,
        b: int,
        *,
        now_ms: int,
        idempotency_key: str,
        wish: str = "",
        deadline_ms: int | None = None,
    ) -> SeatHold:
        """改签: hold on the new run, commit at the old ticket, confirm the new hold."""
        old = self.get_hold(old_hold_id)
        if old is None or old.account_id != account_id:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        if old.run_id == new_run_id:
            raise error_for(SeatCode.BAD_REQUEST, reason="a change goes to another run")
        if old.state not in ("confirmed", "changed"):
            raise error_for(SeatCode.HOLD_NOT_LIVE, state=old.state)
        gone = self.holds[old_hold_id].gone  # refunded one by one: they do not move
        new = self.hold(
            account_id,
            new_run_id,
            new_class,
            a,
            b,
            [p for i, p in enumerate(old.passengers, 1) if i not in gone],
            now_ms=now_ms,
            idempotency_key=idempotency_key,
            wish=wish,
            deadline_ms=deadline_ms,
            change_of=old_hold_id,
        )
        try:
            self.decide_change(
                old_hold_id, new.hold_id, commit=True, account_id=account_id, now_ms=now_ms
            )
        except (ChangeAborted, HoldNotLive, NotOwner):
            self.cancel(account_id, new.hold_id, now_ms=now_ms, change_aborted=True)
            raise
        self.confirm(account_id, new.hold_id, now_ms=now_ms, change_commit_of=old_hold_id)
        return replace(new, state="confirmed")

    # reads --------------------------------------------------------------------------------
    def remaining(self, run_id: str, seat_class: str) -> Remaining:
        unit = self._unit(run_id, seat_class)
        return remaining_all(unit.nseg, gap_counts(unit.masks))

    def occupancy(self, run_id: str, seat_class: str) -> dict[SeatRef, str]:
        unit = self._unit(run_id, seat_class)
        return {ref_from_tail(t): m for t, m in zip(unit.tails, unit.masks, strict=True)}

    def get_hold(self, hold_id: str) -> HoldInfo | None:
        h = self.holds.get(hold_id)
        if h is None:
            return None
        unit = self._unit(h.run, h.seat_class)
        return HoldInfo(
            h.hold_id,
            h.account,
            h.run,
            h.seat_class,
            (h.a, h.b),
            tuple(ref_from_tail(unit.tails[i]) for i in h.seats),
            h.passengers,
            h.state,
            h.deadline_ms,
            h.change_of,
            h.changed_to,
        )

    # internals ----------------------------------------------------------------------------
    def _unit(self, run_id: str, seat_class: str) -> _Unit:
        unit = self.units.get((run_id, seat_class))
        if unit is None:
            raise error_for(SeatCode.NOT_LOADED)
        return unit

    def _owned(self, hold_id: str, account_id: str) -> _Hold:
        h = self.holds.get(hold_id)
        if h is None or h.account != account_id:
            raise error_for(SeatCode.HOLD_NOT_FOUND)
        return h

    def _release(self, h: _Hold, state: str) -> None:
        """Every place not gone already (release_one) goes back."""
        unit = self._unit(h.run, h.seat_class)
        for place, (i, p) in enumerate(zip(h.seats, h.passengers, strict=True), 1):
            if place in h.gone:
                continue
            unit.masks[i] = release(unit.masks[i], h.a, h.b)
            del self.pax[h.run][p]  # a live hold's passengers point to it alone
        h.state = state
        self.events.append(({"changed": "released"}.get(state, state), h.hold_id))
