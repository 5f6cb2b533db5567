"""Redis keys of the fairness gate, on top of :class:`inventory.keys.Keys`.

Each key lives in the shard of the thing it counts, so each script call touches one hash
slot and the load of a rush spreads over every shard:

- a rate limit of ``(scope, subject)`` lives in ``shard(scope + ":" + subject)``. With the
  scope ``acct`` that is the account's own shard (``Keys.shard("acct:" + account id)``),
  next to its cap of live holds (``Keys.account_holds``), so a later script could take
  both in one call;
- a queue token's used-record lives in ``shard("qt:" + nonce)``: nonces are random, so
  spent tokens spread evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.keys import Keys

# A scope names what is counted; it is part of the key, so it must not contain ':'.
SCOPE_ACCOUNT = "acct"
SCOPE_PERSON = "person"  # the passenger's ID HMAC, never the raw ID number
SCOPE_ADDRESS = "ip"
SCOPE_POLL = "poll"  # an account's waiting-room polls


@dataclass(frozen=True, slots=True)
class FairnessKeys:
    keys: Keys

    def rate_limit(self, scope: str, subject: str) -> str:
        """String: the subject's GCRA theoretical arrival time (ms)."""
        if not scope or ":" in scope:
            raise ValueError(f"a rate-limit scope is a non-empty word without ':', got {scope!r}")
        unit = f"{scope}:{subject}"
        return f"{self.keys.tag(self.keys.shard(unit))}:rl:{unit}"

    def token_used(self, nonce: str) -> str:
        """String: present while the queue token with this nonce counts as spent."""
        return f"{self.keys.tag(self.keys.shard('qt:' + nonce))}:qtused:{nonce}"
