"""The sale-opening draw: a random order for everyone who joined in the opening window,
first come, first served after it, verifiable by anyone from the published data.

Pure: no I/O, no clock. The rule, byte for byte (``docs/fairness.md`` has a worked
example), named ``fairseat-lottery/1``:

- **seed**: 32 random bytes, published after the draw as 64 lowercase hex digits;
- **commitment**: ``hex(SHA-256(seed))`` over the 32 raw seed bytes (not their hex
  form), published *before* the sale opens, so the seed cannot be changed afterwards;
- **join id**: a pseudonym per (sale, account), ``hex(HMAC-SHA256(key, "join|" + sale_id
  + "|" + account_id))[:32]``; the public list shows join ids, never accounts. An account
  learns its own join id when it joins and can find itself in the list;
- **window joiners** (``joined_ms < window_ends_ms``) are sorted by their draw key
  ``SHA-256(seed || join_id as ASCII)`` (raw digest bytes compared as unsigned bytes,
  i.e. the hex strings compared as text), ties (never seen in practice) by join id;
- **later joiners** follow, in arrival order (the ``arrival`` number the waiting room
  assigned atomically at join), ties by join id.

The joiners' input order never matters: the draw sorts, so the published list may be in
any order. A joiner's draw key depends only on the seed and its own join id: adding or
removing other entries never changes how two real joiners rank against each other. What
the commitment proves is that the seed was fixed before anyone joined; it cannot prove
that whoever held the seed did not register accounts whose join ids draw well (that
takes real-name accounts; see docs/fairness.md, "Limits").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

RULE = "fairseat-lottery/1"
SEED_BYTES = 32
_HEX = frozenset("0123456789abcdef")


class LotteryError(ValueError):
    """The published data is inconsistent (pure code: a plain ValueError subclass)."""


class CommitmentMismatch(LotteryError):
    """The revealed seed is not the one committed to before the sale."""


@dataclass(frozen=True, slots=True)
class Joiner:
    """One entry of the published joiners list."""

    join_id: str
    arrival: int  # the waiting room's arrival counter at join (FCFS order after the window)
    joined_ms: int

    def to_dict(self) -> dict[str, int | str]:
        return {"join_id": self.join_id, "arrival": self.arrival, "joined_ms": self.joined_ms}

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> Joiner:
        join_id, arrival, joined = raw.get("join_id"), raw.get("arrival"), raw.get("joined_ms")
        if not (isinstance(join_id, str) and _is_int(arrival) and _is_int(joined)):
            raise LotteryError(f"malformed joiner entry: {raw!r}")
        assert isinstance(arrival, int) and isinstance(joined, int)
        return cls(join_id, arrival, joined)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


def commitment(seed: bytes) -> str:
    """``hex(SHA-256(seed))``: published before the sale opens."""
    if len(seed) != SEED_BYTES:
        raise LotteryError(f"a seed is {SEED_BYTES} bytes, got {len(seed)}")
    return hashlib.sha256(seed).hexdigest()


def seed_from_hex(text: str) -> bytes:
    if len(text) != 2 * SEED_BYTES or not set(text) <= _HEX:
        raise LotteryError(f"a seed is {2 * SEED_BYTES} lowercase hex digits")
    return bytes.fromhex(text)


def join_id(key: bytes, sale_id: str, account_id: str) -> str:
    """The account's pseudonym in one sale's public list (128 bits, lowercase hex)."""
    message = f"join|{sale_id}|{account_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def draw_key(seed: bytes, join_id: str) -> str:
    """``hex(SHA-256(seed || join_id))``: a window joiner's place, lowest first."""
    return hashlib.sha256(seed + join_id.encode("ascii")).hexdigest()


def draw_order(seed: bytes, joiners: Iterable[Joiner], window_ends_ms: int) -> list[str]:
    """Join ids in admission order: the window's joiners drawn, then the rest FCFS."""
    everyone = list(joiners)
    ids = [j.join_id for j in everyone]
    if len(set(ids)) != len(ids):
        raise LotteryError("a join id appears twice (one entry per account per sale)")
    for jid in ids:
        if not jid or not jid.isascii():
            raise LotteryError(f"join ids are non-empty ASCII, got {jid!r}")
    window = [j for j in everyone if j.joined_ms < window_ends_ms]
    later = [j for j in everyone if j.joined_ms >= window_ends_ms]
    window.sort(key=lambda j: (draw_key(seed, j.join_id), j.join_id))
    later.sort(key=lambda j: (j.arrival, j.join_id))
    return [j.join_id for j in window] + [j.join_id for j in later]


def verify_draw(
    commitment_hex: str, seed: bytes, joiners: Iterable[Joiner], window_ends_ms: int
) -> list[str]:
    """What anyone can run: check the seed against the commitment published before the
    sale (raises ``CommitmentMismatch``), then recompute the order."""
    if not hmac.compare_digest(commitment(seed), commitment_hex.lower()):
        raise CommitmentMismatch("SHA-256(seed) differs from the published commitment")
    return draw_order(seed, joiners, window_ends_ms)


def joiners_digest(joiners: Sequence[Joiner]) -> str:
    """``hex(SHA-256)`` of the joiners list in canonical form, logged when the window
    closes and before the seed is revealed: the list cannot change after the reveal.

    Canonical form: entries sorted by join id, each as ``{"arrival":…,"join_id":…,
    "joined_ms":…}`` (keys sorted, no spaces), joined by ``\\n``, UTF-8.
    """
    lines = [
        json.dumps(j.to_dict(), sort_keys=True, separators=(",", ":"))
        for j in sorted(joiners, key=lambda j: j.join_id)
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def positions(order: Sequence[str]) -> dict[str, int]:
    """Join id -> 1-based position in the admission order."""
    return {jid: i for i, jid in enumerate(order, start=1)}


# What the audit log carries, and checking a sale from its export ---------------------------
def commitment_payload(commitment_hex: str, window_ends_ms: int) -> dict[str, object]:
    """Payload of the ``lottery_commitment`` entry, appended before the sale opens."""
    return {"rule": RULE, "commitment": commitment_hex, "window_ends_ms": window_ends_ms}


def joiners_payload(joiners: Sequence[Joiner]) -> dict[str, object]:
    """Payload of the ``lottery_joiners`` entry, appended when the window closes and before
    the seed is revealed (the list itself is published next to the export)."""
    return {"rule": RULE, "count": len(joiners), "digest": joiners_digest(joiners)}


def seed_payload(seed: bytes) -> dict[str, object]:
    """Payload of the ``lottery_seed`` entry, appended once the draw is done."""
    return {"rule": RULE, "seed": seed.hex()}


def verify_from_log(
    entries: Sequence[Mapping[str, object]], joiners: Sequence[Joiner]
) -> list[str]:
    """The order of a sale, recomputed from its audit export and its published joiners list.

    Checks that the export holds exactly one commitment, joiners and seed entry, in that
    order of ``seq``; that the list is the one whose digest was logged; and that the seed
    is the committed one. Check the export's own chain with
    ``reservation.fairness.audit.verify_entries`` as well.
    """

    def one(kind: str) -> tuple[int, Mapping[str, object]]:
        found = [e for e in entries if e.get("kind") == kind]
        if len(found) != 1:
            raise LotteryError(f"the export holds {len(found)} {kind} entries, not 1")
        seq, payload = found[0].get("seq"), found[0].get("payload")
        if not (_is_int(seq) and isinstance(payload, Mapping)) or payload.get("rule") != RULE:
            raise LotteryError(f"the {kind} entry is not a {RULE} entry")
        assert isinstance(seq, int)
        return seq, payload

    committed_at, committed = one("lottery_commitment")
    listed_at, listed = one("lottery_joiners")
    revealed_at, revealed = one("lottery_seed")
    if not committed_at < listed_at < revealed_at:
        raise LotteryError("commitment, joiners list and seed were not logged in that order")
    if listed.get("digest") != joiners_digest(joiners) or listed.get("count") != len(joiners):
        raise LotteryError("the joiners list is not the one logged when the window closed")
    commitment_hex, window_ends, seed_hex = (
        committed.get("commitment"),
        committed.get("window_ends_ms"),
        revealed.get("seed"),
    )
    if not (isinstance(commitment_hex, str) and _is_int(window_ends) and isinstance(seed_hex, str)):
        raise LotteryError("malformed lottery entries")
    assert isinstance(window_ends, int)
    return verify_draw(commitment_hex, seed_from_hex(seed_hex), joiners, window_ends)
