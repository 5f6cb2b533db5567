"""A pure-Python reference model of the slot inventory, with the Lua engine's semantics.

The property-based suite drives this model and the real engine with the same operations
and compares them after every step. Keep it obviously correct rather than fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory.slot_codes import SlotCode


@dataclass
class ModelSlot:
    capacity: int
    available: int
    release_ms: int
    ends_ms: int
    resource_id: str
    day: str


@dataclass
class ModelHold:
    slot_id: str
    account_id: str
    person: str
    state: str
    deadline_ms: int


@dataclass
class SlotModel:
    slots: dict[str, ModelSlot] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    # (resource, day) -> person -> hold id: "one active booking per resource per day".
    person_day: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # account -> hold id -> deadline: the cap on live unpaid holds.
    account_holds: dict[str, dict[str, int]] = field(default_factory=dict)

    def publish(
        self,
        slot_id: str,
        *,
        capacity: int,
        release_ms: int,
        ends_ms: int,
        resource_id: str,
        day: str,
    ) -> bool:
        if slot_id in self.slots:
            return False
        self.slots[slot_id] = ModelSlot(capacity, capacity, release_ms, ends_ms, resource_id, day)
        return True

    def _live_account_holds(self, account_id: str, now_ms: int) -> dict[str, int]:
        held = self.account_holds.setdefault(account_id, {})
        for hold_id in [h for h, deadline in held.items() if deadline < now_ms]:
            del held[hold_id]
        return held

    def hold(
        self,
        *,
        slot_id: str,
        hold_id: str,
        account_id: str,
        person: str,
        now_ms: int,
        deadline_ms: int,
        max_live_holds: int,
    ) -> SlotCode:
        """Returns OK, REPLAY or the refusal code the engine raises as an error."""
        previous = self.holds.get(hold_id)
        if previous is not None:
            if previous.slot_id != slot_id or previous.account_id != account_id:
                return SlotCode.IDEMPOTENCY_MISMATCH
            return SlotCode.REPLAY
        live = self._live_account_holds(account_id, now_ms)
        if hold_id not in live and len(live) >= max_live_holds:
            return SlotCode.HOLD_CAP
        slot = self.slots.get(slot_id)
        if slot is None:
            return SlotCode.NOT_FOUND
        if now_ms >= slot.ends_ms:
            return SlotCode.CLOSED
        if now_ms < slot.release_ms:
            return SlotCode.NOT_RELEASED
        if slot.available <= 0:
            return SlotCode.SOLD_OUT
        people = self.person_day.setdefault((slot.resource_id, slot.day), {})
        if person in people:
            return SlotCode.PERSON_LIMIT
        slot.available -= 1
        people[person] = hold_id
        live[hold_id] = deadline_ms
        self.holds[hold_id] = ModelHold(slot_id, account_id, person, "held", deadline_ms)
        return SlotCode.OK

    def confirm(self, *, hold_id: str, account_id: str, now_ms: int) -> SlotCode:
        hold = self.holds.get(hold_id)
        if hold is None:
            return SlotCode.NOT_FOUND
        if hold.account_id != account_id:
            return SlotCode.NOT_OWNER
        self.account_holds.get(account_id, {}).pop(hold_id, None)
        if hold.state == "confirmed":
            return SlotCode.REPLAY
        if hold.state != "held":
            return SlotCode.HOLD_NOT_LIVE
        if now_ms >= hold.deadline_ms:
            return SlotCode.HOLD_EXPIRED
        hold.state = "confirmed"
        return SlotCode.OK

    def release(self, *, hold_id: str, account_id: str | None, now_ms: int, state: str) -> SlotCode:
        hold = self.holds.get(hold_id)
        if hold is None:
            return SlotCode.NOT_FOUND
        if account_id is not None and hold.account_id != account_id:
            return SlotCode.NOT_OWNER
        if account_id is not None:
            self.account_holds.get(account_id, {}).pop(hold_id, None)
        if hold.state in ("cancelled", "expired"):
            return SlotCode.REPLAY
        if state == "expired":
            if hold.state != "held":
                return SlotCode.HOLD_NOT_LIVE
            if now_ms < hold.deadline_ms:
                return SlotCode.NOT_DUE
        hold.state = state
        slot = self.slots[hold.slot_id]
        slot.available = min(slot.capacity, slot.available + 1)
        people = self.person_day.get((slot.resource_id, slot.day), {})
        if people.get(hold.person) == hold_id:
            del people[hold.person]
        return SlotCode.OK

    def due(self, now_ms: int) -> list[str]:
        return sorted(
            h for h, v in self.holds.items() if v.state == "held" and v.deadline_ms <= now_ms
        )
