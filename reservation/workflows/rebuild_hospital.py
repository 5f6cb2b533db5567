"""The hospital part of the rebuild and reconciliation: each patient's day gate.

The gate (``inventory.hospital_gate``: department -> "<hold id>|<until ms>" per patient and
day, in the person's shard) enforces "one registration per department per day" and "at
most N departments per day" atomically. Before this part, a rebuild after a Redis loss left
the gates empty: until new registrations re-made them, only the (non-atomic) Postgres check
held, so two simultaneous attempts in one department right after a rebuild could both pass.
Now the rebuild rewrites every gate from the registrations that still count, and the
reconciliation compares them (kind ``day_gate``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from inventory.hospital_gate import day_gate_key
from reservation.domain.clock import from_ms, local_day, to_ms
from reservation.domain.hospital import day_end
from reservation.services import Services
from reservation.store import hospital as store
from reservation.workflows.rebuild_inventory import (
    Difference,
    RebuildReport,
    Snapshot,
    _hgetall_many,
    _scan,
    index_differences,
)


@dataclass
class DayGateSnapshot(Snapshot):
    # gate key -> department id -> "<hold id>|<until ms>"
    gates: dict[str, dict[str, str]] = field(default_factory=dict)


class DayGatePart:
    name = "hospital_day_gate"

    async def read(self, services: Services, now_ms: int) -> Snapshot:
        now = from_ms(now_ms)
        async with services.pool.acquire() as conn:
            rows = await store.day_gate_entries(conn, local_day(now), now)
        gates: dict[str, dict[str, str]] = defaultdict(dict)
        for r in rows:
            paid = r["status"] != "held"
            until_ms = to_ms(day_end(r["day"]) if paid else r["hold_deadline"])
            key = day_gate_key(services.keys, r["person_hmac"], r["day"].isoformat())
            gates[key][r["department_id"]] = f"{r['id']}|{until_ms}"
        return DayGateSnapshot(now_ms, [], [], gates=dict(gates))

    async def restore(
        self, services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
    ) -> None:
        assert isinstance(snapshot, DayGateSnapshot)
        stale = await _scan(services, "hday")
        async with services.redis.pipeline(transaction=False) as pipe:
            for key in stale:
                pipe.delete(key)  # not unlink: async in a cluster pipeline
            for key, entries in snapshot.gates.items():
                pipe.hset(key, mapping=entries)
                pipe.pexpireat(key, max(_entry(v)[1] for v in entries.values()))
            await pipe.execute()
        report.day_gates = len(snapshot.gates)

    def live_account_holds(self, snapshot: Snapshot) -> dict[str, dict[str, int]]:
        return {}  # registrations are slot holds: the slot part counts them

    async def compare(self, services: Services, snapshot: Snapshot) -> list[Difference]:
        """Department -> hold id of every gate, entries past their time left out (the
        reserve script drops those lazily)."""
        assert isinstance(snapshot, DayGateSnapshot)
        keys = sorted(set(snapshot.gates) | set(await _scan(services, "hday")))
        diffs: list[Difference] = []
        for key, raw in zip(keys, await _hgetall_many(services, keys), strict=True):
            live = _holds(raw, snapshot.now_ms)
            want = _holds(snapshot.gates.get(key, {}), snapshot.now_ms)
            diffs += index_differences("day_gate", key, live, want, of="department")
        return diffs


def _entry(value: str) -> tuple[str, int]:
    """A gate entry, "<hold id>|<until ms>" (hospital_day_reserve.lua), as its parts."""
    hold_id, _, until = value.rpartition("|")
    return hold_id, int(until)


def _holds(entries: dict[str, str], now_ms: int) -> dict[str, str]:
    """department -> hold id of the entries still counting at ``now_ms``."""
    out = {}
    for department, value in entries.items():
        hold_id, until_ms = _entry(value)
        if until_ms >= now_ms:
            out[department] = hold_id
    return out
