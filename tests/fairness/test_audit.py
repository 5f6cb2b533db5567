"""The audit chain on real Postgres: concurrent appenders never fork it, the table refuses
changes, a tampered or deleted row is found at exactly its seq, and an export verifies
offline with the pure function (and the CLI's `check`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from reservation.commands.audit import _check, export_document
from reservation.fairness import audit, lottery
from reservation.fairness.audit import GENESIS, Kind
from reservation.fairness.lottery import Joiner
from reservation.store.db import create_pool

N = 40


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await create_pool(database_url, min_size=1, max_size=10)  # with the jsonb codec
    yield pool
    await pool.close()


async def _append_many(pool: Any, n: int, *, at_once: bool = True) -> list[audit.AuditEntry]:
    async def one(i: int) -> audit.AuditEntry:
        async with pool.acquire() as conn:
            return await audit.append(
                conn,
                Kind.ALLOCATION if i % 3 else Kind.RELEASE,
                f"sale-{i % 2}",
                "system",
                {"i": i, "seats": ["05A", "05B"], "note": "二等座", "ok": True, "none": None},
            )

    if at_once:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    return [await one(i) for i in range(n)]


async def test_concurrent_appends_make_one_chain(pool: Any) -> None:
    entries = await _append_many(pool, N)
    assert sorted(e.seq for e in entries) == list(range(1, N + 1))
    # No fork: every predecessor is claimed exactly once, and each entry's prev is seq - 1.
    by_seq = {e.seq: e for e in entries}
    assert len({e.prev_hash for e in entries}) == N
    assert by_seq[1].prev_hash == GENESIS
    assert all(by_seq[s].prev_hash == by_seq[s - 1].hash for s in range(2, N + 1))
    async with pool.acquire() as conn:
        result = await audit.verify(conn)
        assert result == audit.VerifyResult(
            ok=True, checked=N, head_seq=N, head_hash=by_seq[N].hash
        )
        assert await audit.head(conn) == (N, by_seq[N].hash)
    # What append returned is what was stored.
    async with pool.acquire() as conn:
        exported = await audit.export(conn, "sale-0")
    assert [e["hash"] for e in exported] == [
        by_seq[s].hash for s in sorted(by_seq) if by_seq[s].subject == "sale-0"
    ]


async def test_the_table_refuses_changes(pool: Any) -> None:
    await _append_many(pool, 2)
    async with pool.acquire() as conn:
        for sql in (
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 2",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert (await audit.verify(conn)).ok


async def _bypassing_the_guard(conn: Any, sql: str, *args: Any) -> None:
    # What a superuser (or the owner) could do: switch the guard off, change, switch on.
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


async def test_a_tampered_payload_is_found_at_its_seq(pool: Any) -> None:
    await _append_many(pool, 10)
    async with pool.acquire() as conn:
        await _bypassing_the_guard(
            conn, "UPDATE audit_log SET payload = payload || '{\"i\": 99}' WHERE seq = 6"
        )
        result = await audit.verify(conn)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 6, 5)
    assert result.reason == "the contents of entry 6 do not match its hash"
    assert result.head_seq == 5


async def test_a_rehashed_forgery_breaks_the_next_link(pool: Any) -> None:
    entries = await _append_many(pool, 10)
    target = next(e for e in entries if e.seq == 4)
    payload = dict(target.payload, i=1_000)
    forged = audit.entry_hash(
        seq=4,
        at=target.at,
        kind=target.kind,
        subject=target.subject,
        actor=target.actor,
        payload=payload,
        prev_hash=target.prev_hash,
        subject_prev_hash=target.subject_prev_hash,
    )
    async with pool.acquire() as conn:
        await _bypassing_the_guard(
            conn,
            "UPDATE audit_log SET payload = $1::text::jsonb, hash = $2 WHERE seq = 4",
            json.dumps(payload),
            forged,
        )
        result = await audit.verify(conn)
    assert (result.first_broken_seq, result.checked) == (5, 4)
    assert result.reason == "prev_hash of entry 5 is not the hash of entry 4"


async def test_a_deleted_row_is_found(pool: Any) -> None:
    await _append_many(pool, 6)
    async with pool.acquire() as conn:
        await _bypassing_the_guard(conn, "DELETE FROM audit_log WHERE seq = 3")
        result = await audit.verify(conn)
    assert (result.first_broken_seq, result.checked) == (3, 2)
    assert result.reason == "entry 3 is missing (next found: 4)"


async def test_an_export_verifies_offline(pool: Any, tmp_path: Path) -> None:
    await _append_many(pool, 12, at_once=False)  # sale-1 gets the even seqs
    async with pool.acquire() as conn:
        exported = await audit.export(conn, "sale-1")
    assert [e["seq"] for e in exported] == [2, 4, 6, 8, 10, 12]
    assert exported[0]["subject_prev_hash"] == GENESIS
    assert exported[0]["payload"]["note"] == "二等座"
    result = audit.verify_entries(exported)
    assert (result.ok, result.checked, result.head_seq) == (True, 6, 12)
    # A JSON round trip (what the public downloads) still verifies.
    document = json.loads(json.dumps(export_document("sale-1", exported)))
    assert audit.verify_entries(document["entries"]).ok
    path = tmp_path / "sale-1.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert _check(path) == 0

    # Altered, dropped or reordered entries are each caught at the right seq.
    altered = [dict(e) for e in exported]
    altered[2] = dict(altered[2], payload=dict(altered[2]["payload"], seats=["01A"]))
    assert audit.verify_entries(altered).first_broken_seq == 6
    dropped = exported[:2] + exported[3:]
    assert audit.verify_entries(dropped).first_broken_seq == 8
    assert audit.verify_entries(exported[1:]).first_broken_seq == 4  # the start is cut
    swapped = [exported[1], exported[0], *exported[2:]]
    assert audit.verify_entries(swapped).first_broken_seq == 4
    path.write_text(json.dumps(export_document("sale-1", altered)), encoding="utf-8")
    assert _check(path) == 1
    assert audit.verify_entries([*exported[:1], "junk"]).first_broken_seq == -1  # type: ignore[list-item]
    assert audit.verify_entries([dict(exported[0], seq="2")]).reason == (
        "entry has a field of the wrong type"
    )

    # Both subjects together are the whole log, which verifies as one chain too.
    async with pool.acquire() as conn:
        everything = sorted(
            [*await audit.export(conn, "sale-0"), *exported], key=lambda e: int(e["seq"])
        )
    assert audit.verify_entries(everything, whole_log=True).checked == 12
    assert audit.verify_entries(everything[1:], whole_log=True).reason == (
        "entry 1 is missing (next found: 2)"
    )


def test_the_hash_rule_by_hand() -> None:
    """The rule written out with hashlib and json only, as docs/fairness.md gives it."""
    fields = {
        "seq": 1,
        "at": "2027-01-01T00:00:00.000000Z",
        "kind": "lottery_commitment",
        "subject": "sale-G1-20270101",
        "actor": "system",
        "payload": {"rule": "fairseat-lottery/1", "commitment": "ab" * 32},
        "prev_hash": GENESIS,
        "subject_prev_hash": GENESIS,
    }
    by_hand = hashlib.sha256(
        json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert audit.entry_hash(**fields) == by_hand  # type: ignore[arg-type]
    assert by_hand == "d1b8209051147aeb37274e9e0436ca45087af8a0916d5dcf729142813bb946ba"


def test_canonical_json() -> None:
    # Keys by UTF-16 code units (RFC 8785): U+FB01 sorts after U+1F600 there, not in
    # code points.
    assert audit.canonical_json({"\ufb01": 1, "\U0001f600": 2, "a": [True, None, "é\n"]}) == (
        '{"a":[true,null,"é\\n"],"\U0001f600":2,"\ufb01":1}'.encode()
    )
    for bad in ({"x": 1.5}, {"x": 2**53}, {"x": "\x00"}, {1: "x"}, {"x": {1, 2}}):
        with pytest.raises(ValueError):
            audit.canonical_json(bad)
    with pytest.raises(ValueError):
        audit.format_at(dt.datetime(2027, 1, 1))  # noqa: DTZ001 (naive on purpose)
    when = dt.datetime(2027, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert audit.format_at(when) == "2027-01-01T00:00:00.000000Z"
    assert audit.parse_at(audit.format_at(when)) == when


async def test_bad_payloads_are_refused_before_writing(pool: Any) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError):
            await audit.append(conn, Kind.QUOTA_CHANGE, "sale-1", "operator", {"ratio": 0.5})
        with pytest.raises(ValueError):
            await audit.append(conn, Kind.QUOTA_CHANGE, "", "operator", {})
        entry = await audit.append(
            conn,
            Kind.STAFF_ACTION,
            "sale-1",
            "staff:hosp-a",
            {"action": "close"},
            at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        )
        assert entry.at == "2027-01-01T00:00:00.000000Z"
        assert (await audit.verify(conn)).checked == 1


async def test_a_raw_connection_without_codecs_works_too(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await audit.append(conn, Kind.LOTTERY_SEED, "sale-9", "system", {"seed": "00"})
        assert (await audit.export(conn, "sale-9"))[0] == first.to_dict()
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()


async def test_a_sale_draw_is_checkable_from_its_export(pool: Any) -> None:
    """The whole public story: commitment before the sale, joiners list digest at the
    window's close, seed after; the public recomputes the order from the export."""
    seed = lottery.new_seed()
    joiners = [Joiner(lottery.join_id(b"k", "sale-7", f"a{i}"), i, i * 1_000) for i in range(30)]
    async with pool.acquire() as conn:
        await audit.append(
            conn,
            Kind.LOTTERY_COMMITMENT,
            "sale-7",
            "system",
            lottery.commitment_payload(lottery.commitment(seed), 10_000),
        )
        await audit.append(conn, Kind.RELEASE, "sale-8", "system", {"seats": 100})
        await audit.append(
            conn, Kind.LOTTERY_JOINERS, "sale-7", "system", lottery.joiners_payload(joiners)
        )
        await audit.append(conn, Kind.LOTTERY_SEED, "sale-7", "system", lottery.seed_payload(seed))
        exported = json.loads(json.dumps(await audit.export(conn, "sale-7")))
    assert audit.verify_entries(exported).ok
    public = [Joiner.from_dict(j.to_dict()) for j in reversed(joiners)]  # any listing order
    assert lottery.verify_from_log(exported, public) == lottery.draw_order(seed, joiners, 10_000)
    with pytest.raises(lottery.LotteryError, match="not the one logged"):
        lottery.verify_from_log(exported, joiners[:-1])
    swapped = [*joiners[:-1], Joiner(joiners[-1].join_id, 99, 0)]  # moved into the window
    with pytest.raises(lottery.LotteryError, match="not the one logged"):
        lottery.verify_from_log(exported, swapped)
    with pytest.raises(lottery.LotteryError, match="0 lottery_seed"):
        lottery.verify_from_log(exported[:2], joiners)


async def _fairseat(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reservation.cli",
        "--log-level",
        "WARNING",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_cli(pool: Any, database_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FAIRSEAT_DATA_DIR": str(tmp_path),
    }
    entries = await _append_many(pool, 5, at_once=False)
    code, out = await _fairseat(env, "audit", "verify")
    assert (code, out) == (0, f"ok: 5 entries, head 5 {entries[-1].hash}\n")

    target = tmp_path / "sale-0.json"
    code, _ = await _fairseat(env, "audit", "export", "sale-0", "--output", str(target))
    assert code == 0
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["format"] == "fairseat-audit-export/1"
    assert [e["seq"] for e in document["entries"]] == [1, 3, 5]
    code, out = await _fairseat(env, "audit", "check", str(target))
    assert (code, out) == (0, f"ok: 3 entries of 'sale-0', head 5 {entries[-1].hash}\n")

    async with pool.acquire() as conn:
        await _bypassing_the_guard(conn, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    code, out = await _fairseat(env, "audit", "verify")
    assert code == 1
    assert out.splitlines() == [
        "BROKEN at seq 3: the contents of entry 3 do not match its hash",
        "  2 entries before it verified",
    ]
