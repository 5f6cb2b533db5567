"""The audit log: append-only, hash-chained, verifiable by anyone from an export.

Every entry names a ``kind`` (see :class:`Kind`), a ``subject`` (the sale, resource or
train run it is about), an ``actor`` (``system``, ``staff:<key label>``, ``operator``…)
and a JSON ``payload``. Each entry carries two links:

- ``prev_hash``: the hash of the entry before it (``seq - 1``), all zeros for seq 1; the
  whole log is one chain, which ``fairseat audit verify`` checks end to end;
- ``subject_prev_hash``: the hash of the previous entry *of the same subject*, all zeros
  for its first; so one sale's export is a complete chain of its own that the public can
  check without seeing any other sale.

**The hash rule** (``fairseat-audit/1``): ``hash = hex(SHA-256(canonical JSON of
{"actor", "at", "kind", "payload", "prev_hash", "seq", "subject",
"subject_prev_hash"}))`` where the canonical JSON is RFC 8785 (JCS): object keys sorted
by their UTF-16 code units, no whitespace, strings with only the mandatory escapes (and
non-ASCII as UTF-8), integers in decimal. ``at`` is the UTC time as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits). Payloads hold objects,
arrays, strings, booleans, null and integers of at most 2**53 - 1 in size: no floats
(Postgres' jsonb would rewrite them, and JCS prints numbers as doubles), so a payload
reads back from Postgres exactly as it was hashed. Put decimals in strings.

**Appending** takes a transaction-scoped advisory lock, reads the last entry (and the
subject's last), and inserts ``seq = last + 1``: appenders queue, the chain never forks
(the table's UNIQUE constraints would refuse a fork anyway). Run ``append`` inside the
caller's transaction to log a change atomically with it; the lock is then held until
that transaction ends, so keep it short.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

RULE = "fairseat-audit/1"
GENESIS = "0" * 64
# pg_advisory_xact_lock key of the audit log ("fairaudt"); migrate.py uses "fairseat".
_LOCK_ID = 0x6661697261756474
_MAX_INT = 2**53 - 1
_PAGE = 5000

_COLUMNS = (
    "seq, at, kind, subject, actor, payload::text AS payload, prev_hash, subject_prev_hash, hash"
)


class Kind(StrEnum):
    RELEASE = "release"
    WITHHOLDING = "withholding"
    QUOTA_CHANGE = "quota_change"
    LOTTERY_COMMITMENT = "lottery_commitment"
    LOTTERY_JOINERS = "lottery_joiners"
    LOTTERY_SEED = "lottery_seed"
    ALLOCATION = "allocation"
    CANCELLATION = "cancellation"
    STAFF_ACTION = "staff_action"


# Canonical JSON (RFC 8785 for the values we allow) ----------------------------------------
def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise ValueError(f"{where}: integers must be within ±(2**53 - 1); use a string")
        return
    if isinstance(value, str):
        _check_text(value, where)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: object keys must be strings, got {key!r}")
            _check_text(key, where)
            _check_value(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not allowed (floats: use a string)")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{where}: NUL characters are not allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where}: not valid Unicode text") from exc


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-16-be"))}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (within the allowed values; see the module doc)."""
    _check_value(value, "value")
    return json.dumps(
        _sorted(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def format_at(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def entry_hash(
    *,
    seq: int,
    at: str,
    kind: str,
    subject: str,
    actor: str,
    payload: Any,
    prev_hash: str,
    subject_prev_hash: str,
) -> str:
    document = {
        "actor": actor,
        "at": at,
        "kind": kind,
        "payload": payload,
        "prev_hash": prev_hash,
        "seq": seq,
        "subject": subject,
        "subject_prev_hash": subject_prev_hash,
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str  # format_at(): the exact text that was hashed
    kind: str
    subject: str
    actor: str
    payload: Any
    prev_hash: str
    subject_prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return entry_hash(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            subject=self.subject,
            actor=self.actor,
            payload=self.payload,
            prev_hash=self.prev_hash,
            subject_prev_hash=self.subject_prev_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "subject": self.subject,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "subject_prev_hash": self.subject_prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AuditEntry:
        """Raises ``ValueError`` on a missing or mistyped field."""
        try:
            entry = cls(
                seq=raw["seq"],
                at=raw["at"],
                kind=raw["kind"],
                subject=raw["subject"],
                actor=raw["actor"],
                payload=raw["payload"],
                prev_hash=raw["prev_hash"],
                subject_prev_hash=raw["subject_prev_hash"],
                hash=raw["hash"],
            )
        except KeyError as exc:
            raise ValueError(f"entry lacks the field {exc.args[0]!r}") from exc
        texts = (entry.at, entry.kind, entry.subject, entry.actor, entry.prev_hash)
        if not (
            isinstance(entry.seq, int)
            and not isinstance(entry.seq, bool)
            and all(isinstance(t, str) for t in texts)
            and isinstance(entry.subject_prev_hash, str)
            and isinstance(entry.hash, str)
        ):
            raise ValueError("entry has a field of the wrong type")
        return entry

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> AuditEntry:
        return cls(
            seq=row["seq"],
            at=format_at(row["at"]),
            kind=row["kind"],
            subject=row["subject"],
            actor=row["actor"],
            payload=json.loads(row["payload"]),
            prev_hash=row["prev_hash"],
            subject_prev_hash=row["subject_prev_hash"],
            hash=row["hash"],
        )


# Verification (pure) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # entries found intact before the first broken one
    first_broken_seq: int | None = None
    reason: str = ""
    head_seq: int | None = None  # the last intact entry
    head_hash: str | None = None


class _Checker:
    """Checks entries in seq order, one at a time (so a large log streams through)."""

    def __init__(self, *, whole_log: bool) -> None:
        self.whole_log = whole_log
        self.checked = 0
        self.last: AuditEntry | None = None
        self.subject_heads: dict[str, str] = {}

    def feed(self, entry: AuditEntry) -> tuple[int, str] | None:
        """None if ``entry`` is intact and linked; else (seq of the broken link, why)."""
        last = self.last
        if self.whole_log:
            expected = 1 if last is None else last.seq + 1
            if entry.seq != expected:
                if entry.seq > expected:
                    return expected, f"entry {expected} is missing (next found: {entry.seq})"
                return entry.seq, f"entry {entry.seq} is out of order after {expected - 1}"
        elif last is not None and entry.seq <= last.seq:
            return entry.seq, f"entry {entry.seq} is out of order after {last.seq}"
        if self.whole_log or (last is not None and entry.seq == last.seq + 1):
            want = GENESIS if last is None else last.hash
            if entry.prev_hash != want:
                return (
                    entry.seq,
                    f"prev_hash of entry {entry.seq} is not the hash of entry {entry.seq - 1}",
                )
        want_subject = self.subject_heads.get(entry.subject, GENESIS)
        if entry.subject_prev_hash != want_subject:
            return (
                entry.seq,
                f"subject_prev_hash of entry {entry.seq} is not the hash of the previous "
                f"entry of {entry.subject!r}",
            )
        try:
            computed = entry.computed_hash()
        except ValueError as exc:
            return entry.seq, f"entry {entry.seq} cannot be hashed: {exc}"
        if computed != entry.hash:
            return entry.seq, f"the contents of entry {entry.seq} do not match its hash"
        self.last = entry
        self.subject_heads[entry.subject] = entry.hash
        self.checked += 1
        return None

    def result(self, broken: tuple[int, str] | None = None) -> VerifyResult:
        head = self.last
        return VerifyResult(
            ok=broken is None,
            checked=self.checked,
            first_broken_seq=None if broken is None else broken[0],
            reason="" if broken is None else broken[1],
            head_seq=None if head is None else head.seq,
            head_hash=None if head is None else head.hash,
        )


def verify_entries(
    entries: Iterable[Mapping[str, Any]], *, whole_log: bool = False
) -> VerifyResult:
    """Check exported entries (dicts as ``export`` gives them), in the order given.

    Default: an export of subjects, not necessarily consecutive: every entry's hash, every
    subject's chain from its genesis, ``prev_hash`` wherever two entries are consecutive,
    seq increasing. ``whole_log=True``: the complete log, seq 1, 2, 3… linked throughout.
    """
    checker = _Checker(whole_log=whole_log)
    for raw in entries:
        if not isinstance(raw, Mapping):
            return checker.result((-1, f"an entry is not a JSON object: {raw!r:.80}"))
        try:
            entry = AuditEntry.from_dict(raw)
        except ValueError as exc:
            seq = raw.get("seq")
            return checker.result((seq if isinstance(seq, int) else -1, str(exc)))
        broken = checker.feed(entry)
        if broken is not None:
            return checker.result(broken)
    return checker.result()


# Postgres --------------------------------------------------------------------------------
async def append(
    conn: Any,
    kind: str,
    subject: str,
    actor: str,
    payload: Mapping[str, Any],
    *,
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Append one entry (after every entry committed before it) and return it.

    ``at`` defaults to the database's clock at the moment of the append, so entries are
    in time order whichever host appends them.

    The head is read by a statement *after* the lock is granted, so under READ COMMITTED
    (the default) it sees the previous holder's committed entry. Inside a REPEATABLE READ
    or SERIALIZABLE transaction the snapshot may predate the lock: the insert then fails
    on the UNIQUE links (never a fork), so do not append from such transactions.
    """
    if not (kind and subject and actor):
        raise ValueError("kind, subject and actor must not be empty")
    if not isinstance(payload, Mapping):
        raise ValueError("the payload is a JSON object")
    body = canonical_json(payload).decode("utf-8")  # validates before any lock is taken
    value = json.loads(body)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        head = await conn.fetchrow(
            "SELECT clock_timestamp() AS now, last.seq, last.hash,"
            " (SELECT hash FROM audit_log WHERE subject = $1"
            "  ORDER BY seq DESC LIMIT 1) AS subject_hash"
            " FROM (SELECT 1) AS one LEFT JOIN LATERAL"
            " (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS last ON true",
            subject,
        )
        when = format_at(at if at is not None else head["now"])
        seq = 1 if head["seq"] is None else head["seq"] + 1
        prev_hash = head["hash"] or GENESIS
        subject_prev_hash = head["subject_hash"] or GENESIS
        digest = entry_hash(
            seq=seq,
            at=when,
            kind=str(kind),
            subject=subject,
            actor=actor,
            payload=value,
            prev_hash=prev_hash,
            subject_prev_hash=subject_prev_hash,
        )
        await conn.execute(
            "INSERT INTO audit_log (seq, at, kind, subject, actor, payload, prev_hash,"
            " subject_prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9)",
            seq,
            parse_at(when),
            str(kind),
            subject,
            actor,
            body,
            prev_hash,
            subject_prev_hash,
            digest,
        )
    return AuditEntry(
        seq, when, str(kind), subject, actor, value, prev_hash, subject_prev_hash, digest
    )


async def verify(conn: Any) -> VerifyResult:
    """Check the whole log; report the first broken link (a missing, altered, reordered or
    unlinked entry). Reads in pages, so the log may be large."""
    checker = _Checker(whole_log=True)
    after = 0
    while True:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT {_PAGE}",
            after,
        )
        for row in rows:
            try:
                entry = AuditEntry._from_row(row)
            except ValueError as exc:
                return checker.result((row["seq"], f"entry {row['seq']} is unreadable: {exc}"))
            broken = checker.feed(entry)
            if broken is not None:
                return checker.result(broken)
        if len(rows) < _PAGE:
            return checker.result()
        after = rows[-1]["seq"]


async def export(conn: Any, subject: str) -> list[dict[str, Any]]:
    """Every entry of one subject, in order, as JSON-ready dicts: with the hash rule in
    this module's doc (and docs/fairness.md), ``verify_entries`` checks them offline."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE subject = $1 ORDER BY seq", subject
    )
    return [AuditEntry._from_row(row).to_dict() for row in rows]


async def head(conn: Any) -> tuple[int, str] | None:
    """(seq, hash) of the last entry: publish it now and then, so that cutting entries off
    the end of the log, which no chain can reveal by itself, becomes visible."""
    row = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return None if row is None else (row["seq"], row["hash"])
