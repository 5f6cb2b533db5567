"""The Lua slot engine and the pure-Python model, driven by the same random operations,
must agree after every step; and no slot ever sells more than its capacity."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from inventory.account_gate import AccountGate
from inventory.errors import InventoryError
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.slot_codes import SlotCode, code_of
from inventory.slot_engine import SlotEngine, SlotSpec, hold_id_for
from inventory.slot_model import SlotModel
from reservation.workflows.hold_slot import hold_within_cap

SLOTS = [
    ("s1-00000000000000a1", "res-a", 2),
    ("s1-00000000000000a2", "res-a", 1),
    ("s7-00000000000000b1", "res-b", 3),
]
ACCOUNTS = [f"acct{i}" for i in range(5)]
START_MS = 1_900_000_000_000  # far enough ahead that Redis TTLs never fire mid-test
MAX_HOLDS = 2
HOLD_MS = 60_000


class SlotMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        self.keys = Keys(prefix=f"sm{secrets.token_hex(4)}", shard_count=16)
        self.calls = ScriptClient(self.client, connections=2)
        self.engine = SlotEngine(self.client, self.keys, calls=self.calls)
        self.gate = AccountGate(self.client, self.keys, self.calls)
        self.model = SlotModel()
        self.now = START_MS
        self.hold_ids: list[tuple[str, str]] = []  # (hold id, account)
        specs = [
            SlotSpec(
                slot_id=sid,
                resource_id=res,
                day="2030-03-01",
                capacity=cap,
                release_ms=START_MS,
                ends_ms=START_MS + 86_400_000,
                retain_until_ms=START_MS + 2 * 86_400_000,
            )
            for sid, res, cap in SLOTS
        ]
        self.run(self.engine.publish(specs))
        for sid, res, cap in SLOTS:
            self.model.publish(
                sid,
                capacity=cap,
                release_ms=START_MS,
                ends_ms=START_MS + 86_400_000,
                resource_id=res,
                day="2030-03-01",
            )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def close() -> None:
            async for key in self.client.scan_iter(match=f"{self.keys.prefix}:*", count=500):
                await self.client.unlink(key)
            await self.calls.aclose()
            await self.client.aclose()

        self.run(close())
        self.loop.close()

    @staticmethod
    def _code(exc: InventoryError | None, replay: bool) -> SlotCode:
        if exc is None:
            return SlotCode.REPLAY if replay else SlotCode.OK
        return code_of(exc)

    @rule(slot=st.sampled_from(SLOTS), account=st.sampled_from(ACCOUNTS), key=st.integers(0, 6))
    def hold(self, slot: tuple[str, str, int], account: str, key: int) -> None:
        slot_id = slot[0]
        hold_id = hold_id_for(slot_id, f"{account}{key:04d}".encode().hex())
        person = "person-" + account
        expected = self.model.hold(
            slot_id=slot_id,
            hold_id=hold_id,
            account_id=account,
            person=person,
            now_ms=self.now,
            deadline_ms=self.now + HOLD_MS,
            max_live_holds=MAX_HOLDS,
        )
        try:
            result = self.run(
                hold_within_cap(
                    self.engine,
                    self.gate,
                    slot_id=slot_id,
                    hold_id=hold_id,
                    account_id=account,
                    person=person,
                    idempotency_key=str(key),
                    now_ms=self.now,
                    deadline_ms=self.now + HOLD_MS,
                    cap=MAX_HOLDS,
                )
            )
            got = self._code(None, result.replay)
        except InventoryError as exc:
            got = self._code(exc, False)
        assert got == expected
        if got == SlotCode.OK:
            self.hold_ids.append((hold_id, account))

    @rule(index=st.integers(0, 50), as_other=st.booleans())
    def confirm(self, index: int, as_other: bool) -> None:
        if not self.hold_ids:
            return
        hold_id, account = self.hold_ids[index % len(self.hold_ids)]
        caller = ACCOUNTS[(ACCOUNTS.index(account) + 1) % len(ACCOUNTS)] if as_other else account
        expected = self.model.confirm(hold_id=hold_id, account_id=caller, now_ms=self.now)
        try:
            result = self.run(
                self.engine.confirm(hold_id=hold_id, account_id=caller, now_ms=self.now)
            )
            got = self._code(None, result.replay)
            self.run(self.gate.release(account_id=caller, hold_id=hold_id))
        except InventoryError as exc:
            got = self._code(exc, False)
        assert got == expected

    @rule(index=st.integers(0, 50))
    def cancel(self, index: int) -> None:
        if not self.hold_ids:
            return
        hold_id, account = self.hold_ids[index % len(self.hold_ids)]
        slot_id = self.model.holds[hold_id].slot_id
        expected = self.model.release(
            hold_id=hold_id, account_id=account, now_ms=self.now, state="cancelled"
        )
        try:
            result = self.run(
                self.engine.release(
                    hold_id=hold_id,
                    slot_id=slot_id,
                    account_id=account,
                    now_ms=self.now,
                    state="cancelled",
                    reason="test",
                )
            )
            got = self._code(None, result.replay)
            self.run(self.gate.release(account_id=account, hold_id=hold_id))
        except InventoryError as exc:
            got = self._code(exc, False)
        assert got == expected

    @rule(seconds=st.integers(1, 90))
    def time_passes_and_sweeper_runs(self, seconds: int) -> None:
        self.now += seconds * 1000
        due = self.model.due(self.now)
        for hold_id in due:
            assert (
                self.model.release(
                    hold_id=hold_id, account_id=None, now_ms=self.now, state="expired"
                )
                == SlotCode.OK
            )
        expired = sum(
            self.run(self.engine.expire_due(shard, self.now, 100))
            for shard in range(self.keys.shard_count)
        )
        assert expired == len(due)

    @invariant()
    def agrees_with_model_and_never_oversells(self) -> None:
        available = self.run(self.engine.available([s[0] for s in SLOTS]))
        for slot_id, _res, capacity in SLOTS:
            live = sum(
                1
                for h in self.model.holds.values()
                if h.slot_id == slot_id and h.state in ("held", "confirmed")
            )
            assert available[slot_id] == self.model.slots[slot_id].available
            assert available[slot_id] == capacity - live
            assert 0 <= available[slot_id] <= capacity
        for hold_id, _account in self.hold_ids:
            view = self.run(self.engine.read_hold(hold_id))
            assert view is not None
            assert view.state == self.model.holds[hold_id].state


def test_slot_engine_matches_model(redis_url: str) -> None:
    SlotMachine.redis_url = redis_url
    test = SlotMachine.TestCase
    test.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    test().runTest()


def test_a_key_reused_after_a_cancel_leaves_no_cap_entry(redis_url: str) -> None:
    """Found by the state machine: a key reused on another slot of the same shard after
    its hold was cancelled (422 idempotency_key_reused) must not leave a cap entry behind,
    or the account's next hold is refused as over the cap (the model, rightly, counts
    only live holds)."""
    SlotMachine.redis_url = redis_url
    state = SlotMachine()
    try:
        state.hold(account="acct1", key=0, slot=SLOTS[1])
        state.cancel(index=0)
        state.hold(account="acct1", key=0, slot=SLOTS[0])  # the same hold id: refused
        state.agrees_with_model_and_never_oversells()
        state.hold(account="acct1", key=0, slot=SLOTS[2])
        state.hold(account="acct1", key=1, slot=SLOTS[0])  # within the cap of 2
        state.agrees_with_model_and_never_oversells()
    finally:
        state.teardown()
