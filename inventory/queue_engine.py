"""The waiting room's Redis side: one sale's queue, one shard, one script call per step.

Thin typed wrappers over ``lua/queue_*.lua`` (time passed in, keys from
:mod:`inventory.queue_keys`). What the steps mean for a citizen, and the draw itself, live
in ``reservation.fairness.waiting_room``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inventory.keys import Keys
from inventory.queue_keys import QueueKeys
from inventory.replies import as_text
from inventory.script_client import ScriptClient
from inventory.scripts import script_source

SCRIPTS = ("queue_open", "queue_join", "queue_close", "queue_place", "queue_status", "queue_finish")
PLACE_BATCH = 2000  # positions per queue_place call: keeps each call well under 1 ms-ish


class QueueMissing(LookupError):
    """The sale has no waiting room in Redis (never opened, or Redis lost it)."""


@dataclass(frozen=True, slots=True)
class JoinResult:
    new: bool
    arrival: int
    joined_ms: int
    late_rank: int  # 0: joined inside the opening window (placed by the draw)
    position: int  # 0 until the draw placed it


@dataclass(frozen=True, slots=True)
class WindowJoiner:
    account_id: str
    join_id: str
    arrival: int
    joined_ms: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    state: str  # draw_pending | waiting | admitted | lapsed | done | sold_out | over
    position: int
    admitted_upto: int
    live_admissions: int  # admitted and not yet used
    remaining: int
    served: int
    lapsed: int
    deadline_ms: int  # admission (and token) deadline when admitted, else 0
    nonce: str  # the current token nonce when admitted, else ""
    sold_out_now: bool
    total: int  # positions handed out so far
    n_window: int


class JoinRefused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code  # -2 over, -3 sold out


class QueueEngine:
    def __init__(self, client: Any, keys: Keys, calls: ScriptClient) -> None:
        self.keys = QueueKeys(keys)
        self.calls = calls
        self._client = client
        self._scripts = {n: client.register_script(script_source(n)) for n in SCRIPTS}

    async def load(self) -> None:
        """Load the scripts now (at start-up): see ``fairness_engine._load`` for why."""
        for script in self._scripts.values():
            script.sha = await self._client.script_load(script.script)

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> list[Any]:
        result: list[Any] = await self.calls.call(self._scripts[name], keys, args)
        return result

    async def open(
        self,
        sale_id: str,
        *,
        now_ms: int,
        window_ends_ms: int,
        release_ms: int,
        ends_ms: int,
        admit_factor: int,
        admission_ttl_ms: int,
        stock: int,
        retain_until_ms: int,
    ) -> bool:
        """True if created now, False if it existed (then it is left untouched)."""
        k = self.keys.sale(sale_id)
        result = await self._call(
            "queue_open",
            [k.meta],
            [
                now_ms,
                window_ends_ms,
                release_ms,
                ends_ms,
                admit_factor,
                admission_ttl_ms,
                stock,
                retain_until_ms,
            ],
        )
        return int(result[0]) == 0

    async def join(self, sale_id: str, *, account_id: str, join_id: str, now_ms: int) -> JoinResult:
        k = self.keys.sale(sale_id)
        r = await self._call(
            "queue_join", [k.meta, k.joins, k.order], [now_ms, account_id, join_id]
        )
        code = int(r[0])
        if code == -1:
            raise QueueMissing(sale_id)
        if code < 0:
            raise JoinRefused(code)
        return JoinResult(code == 0, int(r[1]), int(r[2]), int(r[3]), int(r[4]))

    async def close_window(self, sale_id: str, *, now_ms: int) -> list[WindowJoiner] | None:
        """The window's joiners, closing it; None if the window has not ended yet."""
        k = self.keys.sale(sale_id)
        r = await self._call("queue_close", [k.meta, k.joins], [now_ms])
        code = int(r[0])
        if code == -4:
            return None
        if code < 0:
            raise QueueMissing(sale_id)
        return [
            WindowJoiner(as_text(r[i]), as_text(r[i + 1]), int(r[i + 2]), int(r[i + 3]))
            for i in range(1, len(r), 4)
        ]

    async def place(self, sale_id: str, *, order: Sequence[str], now_ms: int) -> None:
        """Write positions 1..n for ``order`` (account ids), then mark the sale drawn."""
        k = self.keys.sale(sale_id)
        n = len(order)
        starts = list(range(0, n, PLACE_BATCH)) or [0]
        for start in starts:
            batch = order[start : start + PLACE_BATCH]
            final = start == starts[-1]
            args: list[Any] = [now_ms, 1 if final else 0, n]
            for i, account in enumerate(batch, start=start + 1):
                args += [account, i]
            r = await self._call("queue_place", [k.meta, k.joins, k.order], args)
            if int(r[0]) == 1:
                return  # another process finished the same draw
            if int(r[0]) < 0:
                raise QueueMissing(sale_id)

    async def status(
        self,
        sale_id: str,
        *,
        account_id: str,
        now_ms: int,
        measured_remaining: int | None,
        nonce_candidate: str,
        max_admit: int = 1000,
        measured_at_ms: int = 0,
    ) -> QueueStatus | None:
        """None if the account has not joined; raises QueueMissing if the sale is unknown."""
        k = self.keys.sale(sale_id)
        r = await self._call(
            "queue_status",
            [k.meta, k.joins, k.order, k.admitted, k.nonces, k.done],
            [
                now_ms,
                account_id,
                -1 if measured_remaining is None else measured_remaining,
                nonce_candidate,
                max_admit,
                measured_at_ms,
            ],
        )
        code = int(r[0])
        if code == -5:
            return None
        if code < 0:
            raise QueueMissing(sale_id)
        return QueueStatus(
            state=as_text(r[1]),
            position=int(r[2]),
            admitted_upto=int(r[3]),
            live_admissions=int(r[4]),
            remaining=int(r[5]),
            served=int(r[6]),
            lapsed=int(r[7]),
            deadline_ms=int(r[8]),
            nonce=as_text(r[9]),
            sold_out_now=int(r[10]) == 1,
            total=int(r[11]),
            n_window=int(r[12]),
        )

    async def finish(
        self, sale_id: str, *, account_id: str, outcome: str, places: int, now_ms: int
    ) -> bool:
        """Record a token hold's outcome; True when this call turned the sale sold out."""
        if outcome not in ("held", "retry", "sold_out"):
            raise ValueError(f"unknown outcome {outcome!r}")
        k = self.keys.sale(sale_id)
        r = await self._call(
            "queue_finish",
            [k.meta, k.admitted, k.nonces, k.done],
            [now_ms, account_id, outcome, places],
        )
        if int(r[0]) < 0:
            raise QueueMissing(sale_id)
        return int(r[1]) == 1

    async def waiting_accounts(self, sale_id: str) -> list[str]:
        """Every joiner not done (for the sold-out notice); one read of the sale's shard."""
        k = self.keys.sale(sale_id)
        joined = [as_text(a) for a in await self._client.hkeys(k.joins)]
        done = {as_text(a) for a in await self._client.smembers(k.done)}
        return [a for a in joined if a not in done]
