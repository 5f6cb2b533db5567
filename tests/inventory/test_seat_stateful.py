"""The Lua seat engine and the pure-Python model, driven by the same random operations
(hold, confirm, cancel, expire, sweep, change and its crash paths, the clock), must agree
after every step; and no seat-segment is ever held or sold twice."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from inventory.errors import InventoryError
from inventory.keys import Keys
from inventory.outbox_event import event_fields
from inventory.seat_engine import SeatEngine
from inventory.seat_model import SeatModel, SeatSpec

T = TypeVar("T")
NSEG = 5
RUNS = {  # two runs of one route: a 2-row coach and a smaller one (sold out more often)
    "G101": [SeatSpec("01", r, x) for r in (1, 2) for x in "ABCDF"],
    "G103": [SeatSpec("01", 1, x) for x in "ACDF"],
}
ACCOUNTS = ("u1", "u2")
PEOPLE = tuple(f"x{i}" for i in range(40))
START = 1_900_000_000_000
HOLD_MS = 60_000

trips = st.lists(st.integers(0, NSEG), min_size=2, max_size=2, unique=True).map(sorted)
wishes = st.sampled_from(("", "", "window", "aisle", "middle"))


class SeatMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        self.keys = Keys(prefix=f"ss{secrets.token_hex(4)}", shard_count=16)
        self.now = START
        self.engine = SeatEngine(self.client, self.keys, clock=lambda: self.now, hold_ms=HOLD_MS)
        self.model = SeatModel(self.keys, hold_ms=HOLD_MS)
        self.holds: list[tuple[str, str]] = []  # (hold id, account)
        self.crashes = 0
        for run, seats in RUNS.items():
            self.model.publish(run, "second", NSEG, seats)
            self.run(self.engine.publish(run, "second", NSEG, seats))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def outbox(self, shard: int) -> Any:
        return await self.client.xrange(self.keys.outbox(shard))

    def teardown(self) -> None:
        async def close() -> None:
            async for key in self.client.scan_iter(match=f"{self.keys.prefix}:*", count=500):
                await self.client.unlink(key)
            await self.client.aclose()

        self.run(close())
        self.loop.close()

    def both(self, engine_call: Coroutine[Any, Any, T], model_call: Callable[[], T]) -> T | None:
        """Run one operation on both; they must give the same answer or the same refusal."""
        expected: T | InventoryError
        got: T | InventoryError
        try:
            expected = model_call()
        except InventoryError as exc:
            expected = exc
        try:
            got = self.run(engine_call)
        except InventoryError as exc:
            got = exc
        name = getattr(engine_call, "__name__", "?")
        event(f"{name}: {type(expected).__name__}")  # shown by --hypothesis-show-statistics
        if isinstance(expected, InventoryError):
            assert type(got) is type(expected), (got, expected)
            assert isinstance(got, InventoryError)
            assert got.fields.get("passenger") == expected.fields.get("passenger")
            return None
        assert got == expected
        return expected

    def pick(self, data: st.DataObject, *states: str) -> tuple[str, str]:
        """A known hold, mostly one in ``states`` (any state sometimes: refusals count too)."""
        fitting = [
            h
            for h in self.holds
            if (info := self.model.get_hold(h[0])) is not None and info.state in states
        ]
        if fitting and data.draw(st.integers(0, 4), label="fitting") > 0:
            return data.draw(st.sampled_from(fitting), label="hold")
        return data.draw(st.sampled_from(self.holds), label="hold")

    # operations -------------------------------------------------------------------------------
    @rule(
        run=st.sampled_from(sorted(RUNS)),
        trip=trips,
        people=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True),
        wish=wishes,
        account=st.sampled_from(ACCOUNTS),
        key=st.integers(0, 30),
        pay=st.booleans(),
    )
    def hold(
        self,
        run: str,
        trip: list[int],
        people: list[str],
        wish: str,
        account: str,
        key: int,
        pay: bool,
    ) -> None:
        a, b = trip
        common: dict[str, Any] = dict(idempotency_key=f"h{key}", wish=wish)
        held = self.both(
            self.engine.hold(account, run, "second", a, b, people, now_ms=self.now, **common),
            lambda: self.model.hold(
                account, run, "second", a, b, people, now_ms=self.now, **common
            ),
        )
        if held is not None and not held.replayed:
            self.holds.append((held.hold_id, account))
            if pay:
                self.both(
                    self.engine.confirm(account, held.hold_id, now_ms=self.now),
                    lambda: self.model.confirm(account, held.hold_id, now_ms=self.now),
                )

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), stranger=st.integers(0, 5))
    def confirm(self, data: st.DataObject, stranger: int) -> None:
        hold_id, account = self.pick(data, "held")
        who = "stranger" if stranger == 0 else account
        self.both(
            self.engine.confirm(who, hold_id, now_ms=self.now),
            lambda: self.model.confirm(who, hold_id, now_ms=self.now),
        )

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        hold_id, account = self.pick(data, "held", "confirmed")
        self.both(
            self.engine.cancel(account, hold_id, now_ms=self.now),
            lambda: self.model.cancel(account, hold_id, now_ms=self.now),
        )

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), place=st.integers(0, 4))
    def refund_one_ticket(self, data: st.DataObject, place: int) -> None:
        """A per-ticket refund: one passenger's seat back, the party keeps the others."""
        hold_id, account = self.pick(data, "confirmed")
        self.both(
            self.engine.release_one(account, hold_id, place, now_ms=self.now),
            lambda: self.model.release_one(account, hold_id, place, now_ms=self.now),
        )

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        hold_id, _ = self.pick(data, "held")
        self.both(
            self.engine.expire(hold_id, now_ms=self.now),
            lambda: self.model.expire(hold_id, now_ms=self.now),
        )

    @rule(ms=st.integers(1, HOLD_MS), sweep=st.booleans())
    def time_passes(self, ms: int, sweep: bool) -> None:
        self.now += ms
        if sweep:  # the expiry sweeper runs on every shard
            for shard in sorted({self.engine.keys.run_shard(run) for run in RUNS}):
                self.both(
                    self.engine.expire_due(shard, now_ms=self.now),
                    functools.partial(self.model.expire_due, shard, now_ms=self.now),
                )

    def _other_run(self, hold_id: str) -> str:
        info = self.model.get_hold(hold_id)
        assert info is not None
        return next(r for r in sorted(RUNS) if r != info.run_id)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), trip=trips, wish=wishes, key=st.integers(0, 5))
    def change(self, data: st.DataObject, trip: list[int], wish: str, key: int) -> None:
        old, account = self.pick(data, "confirmed")
        run, (a, b) = self._other_run(old), trip
        common: dict[str, Any] = dict(idempotency_key=f"c{key}", wish=wish)
        new = self.both(
            self.engine.change(account, old, run, "second", a, b, now_ms=self.now, **common),
            lambda: self.model.change(account, old, run, "second", a, b, now_ms=self.now, **common),
        )
        if new is not None and not new.replayed:
            self.holds.append((new.hold_id, account))

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), trip=trips, commit=st.booleans())
    def change_crashes(self, data: st.DataObject, trip: list[int], commit: bool) -> None:
        """A change process that dies after its new hold, before or after the commit."""
        old, account = self.pick(data, "confirmed")
        info = self.model.get_hold(old)
        assert info is not None
        run, (a, b) = self._other_run(old), trip
        self.crashes += 1
        common: dict[str, Any] = dict(
            idempotency_key=f"x{self.crashes}", change_of=old, now_ms=self.now
        )
        new = self.both(
            self.engine.hold(account, run, "second", a, b, info.passengers, **common),
            lambda: self.model.hold(account, run, "second", a, b, info.passengers, **common),
        )
        if new is None:
            return
        self.holds.append((new.hold_id, account))
        if commit:
            self.both(
                self.engine.decide_change(
                    old, new.hold_id, commit=True, account_id=account, now_ms=self.now
                ),
                lambda: self.model.decide_change(
                    old, new.hold_id, commit=True, account_id=account, now_ms=self.now
                ),
            )

    # invariants -------------------------------------------------------------------------------
    @invariant()
    def seats_agree_and_none_is_sold_twice(self) -> None:
        for run in RUNS:
            occupancy = self.run(self.engine.occupancy(run, "second"))
            assert occupancy == self.model.occupancy(run, "second")
            sold: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * NSEG)
            for hold_id, _ in self.holds:
                info = self.model.get_hold(hold_id)
                assert info is not None
                if info.run_id == run and info.state in ("held", "confirmed"):
                    gone = self.model.gone(hold_id)
                    for place, seat in enumerate(info.seats, 1):
                        if place in gone:
                            continue
                        for s in range(*info.segments):
                            sold[(seat.coach, seat.seat)][s] += 1
            for ref, pattern in occupancy.items():
                counts = sold[(ref.coach, ref.seat)]
                assert max(counts) <= 1
                assert pattern == "".join(map(str, counts))

    @invariant()
    def counts_agree(self) -> None:
        for run in RUNS:
            assert self.run(self.engine.remaining(run, "second")) == self.model.remaining(
                run, "second"
            )
            assert self.run(self.engine.audit(run, "second")) == []

    @invariant()
    def holds_and_events_agree(self) -> None:
        for hold_id, _ in self.holds:
            assert self.run(self.engine.get_hold(hold_id)) == self.model.get_hold(hold_id)
        for shard in {self.engine.keys.run_shard(run) for run in RUNS}:
            entries = cast(list[tuple[str, Any]], self.run(self.outbox(shard)))
            events = [event_fields(f) for _, f in entries]
            assert [(f["type"], f["hold"]) for f in events] == [
                e for e in self.model.events if self.engine.keys.hold_shard(e[1]) == shard
            ]


def test_seat_engine_matches_the_model(redis_url: str) -> None:
    SeatMachine.redis_url = redis_url
    run_state_machine_as_test(
        SeatMachine,
        settings=settings(
            max_examples=100,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
