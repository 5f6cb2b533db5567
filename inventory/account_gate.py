"""The account-wide cap on live unpaid holds: a fairness gate in front of the inventory.

An account's holds span shards, so the cap cannot live in the inventory's own script
(one script, one hash slot). It lives in the account's shard: a hold first takes a place
under the cap here, then asks the inventory; a refused hold gives the place back.
Confirm, cancel and expiry free it too, and entries past their deadline stop counting on
their own, so a crash between the two calls can only make the cap stricter for a while,
never looser.
"""

from __future__ import annotations

from typing import Any

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
