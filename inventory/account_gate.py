"""The account-wide cap on live unpaid holds: a fairness gate in front of the inventory.

An account's holds span shards, so the cap cannot live in the inventory's own script
(one script, one hash slot). It lives in the account's shard: a hold first takes a place
under the cap here, then asks the inventory; a refused hold gives the place back.
Confirm, cancel and expiry free it too, and entries past their deadline stop counting on
their own, so a crash between the two calls can only make the cap stricter for a while,
never looser.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from typing import Any

from inventory.errors import PersonBusy
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.scripts import script_source
from inventory.slot_codes import check


class AccountGate:
    def __init__(self, client: Any, keys: Keys, calls: ScriptClient) -> None:
        self.keys = keys
        self.calls = calls
        self._reserve = client.register_script(script_source("account_hold_reserve"))
        self._release = client.register_script(script_source("account_hold_release"))
        self.people = PersonLocks(client, keys, calls)

    async def reserve(
        self, *, account_id: str, hold_id: str, now_ms: int, deadline_ms: int, cap: int
    ) -> bool:
        """Count the hold against the cap (raises ``HoldCapReached``); True if it is newly
        counted, False if it already was (a retry)."""
        result = await self.calls.call(
            self._reserve,
            [self.keys.account_holds(account_id)],
            [now_ms, hold_id, deadline_ms, cap],
        )
        return check(int(result[0])) == 0

    async def release(self, *, account_id: str, hold_id: str) -> None:
        await self.calls.call(self._release, [self.keys.account_holds(account_id)], [hold_id])


class PersonLocks:
    """Per-person mutexes (``person_lock.lua``) for rules that span shards and are checked
    against Postgres, such as "a passenger's trips never overlap": without one, two holds
    for the same person on two runs could both pass the check before either is written.
    Locks are taken in sorted order (parties sharing people cannot deadlock), waited for
    briefly, and expire on their own if their owner dies."""

    def __init__(self, client: Any, keys: Keys, calls: ScriptClient) -> None:
        self.keys = keys
        self.calls = calls
        self._script = client.register_script(script_source("person_lock"))

    async def _call(self, person: str, mode: str, owner: str, ttl_ms: int) -> int:
        result = await self.calls.call(
            self._script, [self.keys.person_lock(person)], [mode, owner, ttl_ms]
        )
        return int(result[0])

    @contextlib.asynccontextmanager
    async def holding(
        self,
        people: Collection[str],
        *,
        owner: str,
        ttl_ms: int = 15_000,
        wait_s: float = 2.0,
    ) -> AsyncIterator[None]:
        """Hold every person's lock for the block; ``PersonBusy`` if one stays taken for
        ``wait_s`` (the same person booked from two places at the very same moment)."""
        taken: list[str] = []
        loop = asyncio.get_running_loop()
        try:
            for person in sorted(set(people)):
                give_up, pause = loop.time() + wait_s, 0.005
                while await self._call(person, "take", owner, ttl_ms):
                    if loop.time() >= give_up:
                        raise PersonBusy()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
                taken.append(person)
            yield
        finally:
            # Shielded: a cancelled request still gives its locks back at once.
            if taken:
                await asyncio.shield(
                    asyncio.gather(*(self._call(p, "give", owner, 0) for p in taken))
                )
