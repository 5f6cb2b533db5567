"""Hospital additions to the slot inventory (issue 6): the patient's day gate across
departments, closing a cancelled session's slots, and the standby handover.

The day gate lives in the **person's** shard (``shard_of("person:" + person key)``): a
department's doctors are spread over shards (slots are sharded by resource), so the
department and daily-count rules cannot sit in ``slot_hold``. Like the account cap
(``inventory/account_gate.py``), the gate is taken before the slot hold and given back when
the hold is refused; entries carry their own deadline, so a hold that expires stops
counting without a sweeper and a crash can only make the gate stricter until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from inventory import errors
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.scripts import script_source
from inventory.slot_codes import check
from inventory.slot_engine import SlotEngine, shard_from_id


class GateCode(IntEnum):
    OK = 0
    REPLAY = 1
    DEPARTMENT_TAKEN = -20
    TOO_MANY_DEPARTMENTS = -21


class DepartmentLimit(errors.InventoryError):
    code = "department_limit"
    http_status = 409
    default_message = "One registration per department per day."


class DailyDepartmentLimit(errors.InventoryError):
    code = "daily_department_limit"
    http_status = 409
    default_message = "The daily number of departments is reached."


def day_gate_key(keys: Keys, person: str, day: str) -> str:
    """Hash department id -> "<hold id>|<until ms>" of one patient's day."""
    return f"{keys.tag(keys.shard('person:' + person))}:hday:{person}:{day}"


@dataclass(frozen=True, slots=True)
class Handover:
    slot_id: str
    replay: bool


class HospitalInventory:
    def __init__(self, client: Any, keys: Keys, calls: ScriptClient, engine: SlotEngine) -> None:
        self.keys = keys
        self.calls = calls
        # The engine's epoch guard is installed after start-up; read it at each call.
        self.engine = engine
        self._reserve = client.register_script(script_source("hospital_day_reserve"))
        self._release = client.register_script(script_source("hospital_day_release"))
        self._close = client.register_script(script_source("hospital_slot_close"))
        self._handover = client.register_script(script_source("hospital_slot_handover"))

    async def _expected(self) -> str:
        guard = self.engine.guard
        return "" if guard is None else await guard.expected()

    async def reserve_day(
        self,
        *,
        person: str,
        day: str,
        department_id: str,
        hold_id: str,
        now_ms: int,
        until_ms: int,
        max_departments: int,
    ) -> bool:
        """Count the registration in the patient's day (raises ``DepartmentLimit`` or
        ``DailyDepartmentLimit``); True if newly counted, False if it already was. Called
        again with a later ``until_ms`` it extends the entry (a confirmed registration)."""
        result = await self.calls.call(
            self._reserve,
            [day_gate_key(self.keys, person, day)],
            [now_ms, department_id, hold_id, until_ms, max_departments],
        )
        code = GateCode(int(result[0]))
        if code == GateCode.DEPARTMENT_TAKEN:
            raise DepartmentLimit()
        if code == GateCode.TOO_MANY_DEPARTMENTS:
            raise DailyDepartmentLimit()
        return code == GateCode.OK

    async def release_day(self, *, person: str, day: str, department_id: str, hold_id: str) -> None:
        await self.calls.call(
            self._release, [day_gate_key(self.keys, person, day)], [department_id, hold_id]
        )

    async def close_slot(self, slot_id: str, now_ms: int) -> None:
        """Refuse new holds on the slot (idempotent); raises ``NotFoundInInventory`` for a
        slot the live inventory does not know."""
        shard = shard_from_id(slot_id)
        result = await self.calls.call(
            self._close,
            [self.keys.slot(shard, slot_id), self.keys.epoch(shard)],
            [now_ms, "cancelled", await self._expected()],
        )
        check(int(result[0]))

    async def handover(
        self,
        *,
        old_hold_id: str,
        slot_id: str,
        reason: str,
        new_hold_id: str,
        new_account_id: str,
        new_person: str,
        deadline_ms: int,
        idempotency_key: str,
        now_ms: int,
    ) -> Handover:
        """End ``old_hold_id`` and hold its place for another patient in one atomic call.
        Raises ``HoldNotLive``, ``Closed``, ``PersonLimitReached``… with nothing changed."""
        shard = shard_from_id(slot_id)
        meta = await self.engine.slot_meta(slot_id)
        result = await self.calls.call(
            self._handover,
            [
                self.keys.hold(shard, old_hold_id),
                self.keys.slot(shard, slot_id),
                self.keys.person_day(shard, meta.resource_id, meta.day),
                self.keys.hold_deadlines(shard),
                self.keys.outbox(shard),
                self.keys.hold(shard, new_hold_id),
                self.keys.epoch(shard),
            ],
            [
                now_ms,
                old_hold_id,
                reason,
                new_hold_id,
                new_account_id,
                new_person,
                deadline_ms,
                idempotency_key,
                await self._expected(),
            ],
        )
        code = check(int(result[0]))
        return Handover(slot_id=slot_id, replay=code == 1)
