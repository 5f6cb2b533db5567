"""The fairness gate's Redis side: GCRA rate limits and single-use queue tokens.

Thin async wrappers over ``rate_limit.lua`` and ``token_use.lua`` (one call, one shard,
time passed in), in the manner of :mod:`inventory.account_gate`. Turning a refusal into
an HTTP answer is the service's business (``reservation.fairness.errors.RateLimited``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from inventory.fairness_keys import FairnessKeys
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.scripts import script_source


@dataclass(frozen=True, slots=True)
class Limit:
    """GCRA parameters: one call per ``interval_ms`` on average, ``burst`` at once."""

    interval_ms: int
    burst: int

    def __post_init__(self) -> None:
        if self.interval_ms < 1 or self.burst < 1:
            raise ValueError(f"interval_ms and burst must be >= 1, got {self}")

    @classmethod
    def per_second(cls, rate: float, burst: int) -> Limit:
        """``rate`` calls per second; the interval is rounded up (never looser)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        return cls(interval_ms=max(1, math.ceil(1000 / rate)), burst=burst)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_ms: int  # 0 when allowed
    remaining: int  # further calls allowed right now (0 when refused)


async def _load(client: Any, script: Any) -> None:
    # On a cluster, SCRIPT LOAD goes to every primary. Loading before the first burst
    # matters there: redis-py's cluster client (8.1) fails some calls when many of them
    # hit NOSCRIPT on a fresh client at once and all reload together.
    script.sha = await client.script_load(script.script)


class RateLimiter:
    def __init__(self, client: Any, keys: Keys, calls: ScriptClient) -> None:
        self.keys = FairnessKeys(keys)
        self.calls = calls
        self._client = client
        self._script = client.register_script(script_source("rate_limit"))

    async def load(self) -> None:
        """Load the script on the server(s) now (at start-up), not on the first call."""
        await _load(self._client, self._script)

    async def check(self, scope: str, subject: str, *, now_ms: int, limit: Limit) -> Decision:
        """Count one call of ``subject`` in ``scope``; a refused call is not counted."""
        result = await self.calls.call(
            self._script,
            [self.keys.rate_limit(scope, subject)],
            [now_ms, limit.interval_ms, limit.burst],
        )
        return Decision(bool(int(result[0])), int(result[1]), int(result[2]))

    async def check_all(
        self, checks: list[tuple[str, str, Limit]], *, now_ms: int
    ) -> list[Decision]:
        """Several scopes (each in its own shard) in one round trip where the client can.

        Every scope counts the call, whatever the others decide: a request refused for its
        address still spends its account's budget (stricter, never looser)."""
        results = await self.calls.call_many(
            [
                (
                    self._script,
                    [self.keys.rate_limit(scope, subject)],
                    [now_ms, limit.interval_ms, limit.burst],
                )
                for scope, subject, limit in checks
            ]
        )
        return [Decision(bool(int(r[0])), int(r[1]), int(r[2])) for r in results]


class TokenLedger:
    """Spends queue tokens: each nonce once, remembered past the token's expiry."""

    def __init__(
        self, client: Any, keys: Keys, calls: ScriptClient, *, grace_ms: int = 60_000
    ) -> None:
        self.keys = FairnessKeys(keys)
        self.calls = calls
        self.grace_ms = grace_ms
        self._client = client
        self._script = client.register_script(script_source("token_use"))

    async def load(self) -> None:
        """Load the script on the server(s) now (at start-up), not on the first call."""
        await _load(self._client, self._script)

    async def use(self, nonce: str, expiry_ms: int, now_ms: int) -> bool:
        """True if this call spent the token; False if it was spent before, or has
        expired (an expired token is never spent, so it can never become fresh)."""
        result = await self.calls.call(
            self._script, [self.keys.token_used(nonce)], [now_ms, expiry_ms, self.grace_ms]
        )
        return int(result[0]) == 0
