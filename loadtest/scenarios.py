"""What the load generator sends: set-up (citizens, published slots) and operations.

Set-up has two ways to create citizens:

- **fast path** (``insert_citizens``): rows inserted straight into ``accounts`` with one
  ``COPY`` and bearer tokens minted with the service's ``TokenSigner``. Needs the database
  URL and the service's secret key (``<data_dir>/secrets.json`` for ``fairseat serve``).
  Tokens are stateless, so the service accepts them like any it issued itself.
- **API** (``register_citizens``): ``POST /v1/citizens`` with valid resident ID numbers.

Slots are always published through the API (``POST /v1/providers/{pid}/slots``) with a
staff or operator key, as providers do.

Operations follow ``loadtest.generator.Op``: ``(session, i) -> status``. ``i`` is the
operation's number; an op maps it to (citizen, slot, Idempotency-Key) so that numbers
never repeat a request by accident. Trains come later: a ``RushOp`` for seat orders will
sit next to ``SlotRushOp`` and reuse ``Citizen``, ``send_with_retries`` and the profiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from stdnum.cn import ric

from reservation.auth import TokenSigner, new_account_id
from reservation.domain.clock import CHINA

# --- citizens --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citizen:
    account_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def id_number(n: int, *, salt: int = 0) -> str:
    """A valid resident ID number (born 1950–1999), distinct for each ``n`` below 18 M
    under one ``salt``."""
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=(n // 1000 + salt) % 18_250)
    body = f"110105{birth:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def phone_number(n: int, *, salt: int = 0) -> str:
    return f"1{(3_000_000_000 + salt * 7_919 + n) % 7_000_000_000 + 3_000_000_000:010d}"


async def register_citizens(
    session: aiohttp.ClientSession, url: str, count: int, *, concurrency: int = 32
) -> list[Citizen]:
    """Register ``count`` citizens through ``POST /v1/citizens``."""
    salt = secrets.randbelow(10_000_000)
    numbers = iter(range(count))
    out: list[Citizen] = []

    async def worker() -> None:
        for n in numbers:
            for attempt in range(5):
                body = {
                    "name": f"压测{n}",
                    "phone": phone_number(n, salt=salt + attempt * 1_000_003),
                    "id_number": id_number(n, salt=salt + attempt * 997),
                }
                async with session.post(url + "/v1/citizens", json=body) as resp:
                    if resp.status == 201:
                        data = await resp.json()
                        out.append(Citizen(data["account_id"], data["token"]))
                        break
                    if resp.status != 409:  # 409: taken by an earlier run, try another
                        raise RuntimeError(f"register: {resp.status} {(await resp.text())[:500]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def insert_citizens(
    database_url: str, secret_key: str, count: int, *, token_ttl_s: int = 86_400
) -> list[Citizen]:
    """Fast path: ``count`` accounts in one COPY, tokens signed with the service's secret.

    The ID HMACs are random (not derived from real ID numbers): nothing reads them back as
    numbers, and the per-person rules only need them distinct.
    """
    import asyncpg

    signer = TokenSigner(secret_key.encode(), token_ttl_s)
    salt = secrets.token_hex(4)
    birth = dt.date(1990, 1, 1)
    ids = [new_account_id() for _ in range(count)]
    records = [
        (
            account_id,
            f"load-{salt}-{n}",
            f"L{salt}{n:09d}",  # not a real phone: cannot collide with a registration
            secrets.token_hex(32),
            "110105********000X",
            birth,
        )
        for n, account_id in enumerate(ids)
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table(
            "accounts",
            records=records,
            columns=["id", "name", "phone", "id_hmac", "id_masked", "birth_date"],
        )
    finally:
        await conn.close()
    # Tokens carry the person key, as the service's own registration issues them.
    return [
        Citizen(account_id, signer.issue(account_id, person=record[3]))
        for account_id, record in zip(ids, records, strict=True)
    ]


# --- slots -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotPlan:
    """``resources`` resources, each with ``per_resource`` slots on one day."""

    resources: int
    per_resource: int = 1
    capacity: int = 50
    release_in_s: float = -1.0  # relative to now; negative: already released
    days_ahead: int = 2
    code_prefix: str = "load"


def publish_bodies(plan: SlotPlan) -> list[dict[str, Any]]:
    """The request bodies that publish ``plan`` (at most 2,000 slots each)."""
    tag = secrets.token_hex(3)
    now = dt.datetime.now(CHINA)
    day = (now + dt.timedelta(days=plan.days_ahead)).date()
    release = now + dt.timedelta(seconds=plan.release_in_s)
    resources = [
        {"code": f"{plan.code_prefix}-{tag}-{r}", "name": f"Load {tag} #{r}", "kind": "doctor"}
        for r in range(plan.resources)
    ]
    slots = []
    for r in range(plan.resources):
        for k in range(plan.per_resource):
            start = dt.datetime(day.year, day.month, day.day, 8, tzinfo=CHINA) + dt.timedelta(
                minutes=10 * k
            )
            slots.append(
                {
                    "resource_code": resources[r]["code"],
                    "starts_at": start.isoformat(),
                    "ends_at": (start + dt.timedelta(minutes=10)).isoformat(),
                    "capacity": plan.capacity,
                    "release_at": release.isoformat(),
                }
            )
    return [
        {"resources": resources if first == 0 else [], "slots": slots[first : first + 2000]}
        for first in range(0, len(slots), 2000)
    ]


async def publish_slots(
    session: aiohttp.ClientSession,
    url: str,
    *,
    provider_id: str,
    key: str,
    plan: SlotPlan,
) -> list[str]:
    """Publish ``plan`` as staff (or operator) and return the slot ids."""
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    for body in publish_bodies(plan):
        async with session.post(
            f"{url}/v1/providers/{provider_id}/slots", json=body, headers=headers
        ) as resp:
            if resp.status != 201:
                raise RuntimeError(f"publish: {resp.status} {(await resp.text())[:500]}")
            ids.extend(s["id"] for s in (await resp.json())["slots"])
    return ids


# --- sending ---------------------------------------------------------------------------

MAX_RETRY_AFTER_S = 5.0


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


async def send_with_retries(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json: Any = None,
    retries: int = 3,
) -> Answer:
    """One request; on 503 or 429 wait as ``Retry-After`` says (capped) and send the same
    request again (same Idempotency-Key: a retry can never book twice)."""
    for attempt in range(retries + 1):
        async with session.request(method, url, headers=headers, json=json) as resp:
            status = resp.status
            if status in (429, 503) and attempt < retries:
                try:
                    wait = float(resp.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                await resp.read()
                await asyncio.sleep(min(max(wait, 0.05), MAX_RETRY_AFTER_S))
                continue
            body = await resp.json(content_type=None) if resp.content_length != 0 else {}
            return Answer(status, body if isinstance(body, dict) else {})
    raise AssertionError("unreachable")  # pragma: no cover


# --- operations ------------------------------------------------------------------------


async def healthz_op(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/healthz") as resp:
        await resp.read()
        return resp.status


@dataclass
class Healthz:
    """The trivial route: the ceiling every other rate is compared with."""

    url: str

    async def __call__(self, session: aiohttp.ClientSession, i: int) -> int:
        return await healthz_op(session, self.url)


@dataclass
class BenchHold:
    """One hold per operation on a distinct (citizen, slot) pair, no retries: for
    measuring. Operation ``i`` books the pair :meth:`pair` gives for ``offset + i``:
    distinct pairs for ``C * S`` operations, the citizens in turn (so each citizen's holds
    are ``C`` operations apart: most have at most 3 live unpaid holds, the default cap,
    while unconfirmed holds stay below ``3 * C``) and the slots in turn too (so a run of
    operations spreads over every slot and its shard instead of emptying one slot, whose
    sold-out 409s would then cap the measured hold rate at its capacity).
    ``confirm``: pay for each hold at once (the pair's status is the confirm's)."""

    url: str
    citizens: Sequence[Citizen]
    slot_ids: Sequence[str]
    offset: int = 0
    confirm: bool = False

    @staticmethod
    def pair(n: int, citizens: int, slots: int) -> tuple[int, int]:
        """(citizen index, slot index) of operation number ``n``. With ``n = q*C + r``
        (``r < C``) the pair is ``(r, (r + q) % S)``: for each citizen ``r`` the ``S``
        values of ``q`` give ``S`` different slots, so the first ``C * S`` numbers give
        distinct pairs, and consecutive numbers move to the next slot."""
        q, r = divmod(n, citizens)
        return r, (r + q) % slots

    async def __call__(self, session: aiohttp.ClientSession, i: int) -> int:
        n = self.offset + i
        c, s = self.pair(n, len(self.citizens), len(self.slot_ids))
        citizen, slot_id = self.citizens[c], self.slot_ids[s]
        headers = {**citizen.headers, "Idempotency-Key": f"b{n}"}
        async with session.post(
            self.url + "/v1/bookings", json={"slot_id": slot_id}, headers=headers
        ) as resp:
            if resp.status != 201 or not self.confirm:
                await resp.read()
                return resp.status
            hold_id = (await resp.json())["id"]
        async with session.post(
            f"{self.url}/v1/bookings/{hold_id}/confirm", headers=citizen.headers
        ) as resp:
            await resp.read()
            return resp.status


@dataclass
class SlotRushOp:
    """A citizen tries to book a place at a rush: hold a slot that still has places (as
    far as this client has seen), pay for it at once; 429/503 are retried after
    ``Retry-After`` with the same Idempotency-Key. The status that counts is the
    confirm's when the hold succeeded, else the hold's.

    Confirmed booking ids are kept in ``confirmed`` (for the invariant checker)."""

    url: str
    citizens: Sequence[Citizen]
    slot_ids: Sequence[str]
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    confirmed: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    _sold_out: set[str] = field(default_factory=set)

    def _pick_slot(self) -> str:
        open_slots = [s for s in self.slot_ids if s not in self._sold_out]
        # The module's generator: reseeded in each forked generator process.
        return random.choice(open_slots or list(self.slot_ids))

    async def __call__(self, session: aiohttp.ClientSession, i: int) -> int:
        citizen = self.citizens[i % len(self.citizens)]
        slot_id = self._pick_slot()
        held = await send_with_retries(
            session,
            "POST",
            self.url + "/v1/bookings",
            headers={**citizen.headers, "Idempotency-Key": f"rush-{self.run}-{i}"},
            json={"slot_id": slot_id},
        )
        if held.status not in (200, 201):
            code = str(held.body.get("code", held.status))
            self.refusals[code] = self.refusals.get(code, 0) + 1
            if code == "sold_out":
                self._sold_out.add(slot_id)
            return held.status
        if held.body.get("state") not in (None, "held"):
            return held.status  # a replay of a hold that was already paid or ended
        paid = await send_with_retries(
            session,
            "POST",
            f"{self.url}/v1/bookings/{held.body['id']}/confirm",
            headers=citizen.headers,
        )
        if paid.status == 200:
            self.confirmed.append(str(held.body["id"]))
        else:
            code = str(paid.body.get("code", paid.status))
            self.refusals[f"confirm:{code}"] = self.refusals.get(f"confirm:{code}", 0) + 1
        return paid.status


# --- for the locust profiles (synchronous: locust runs on gevent) ------------------------


def service_keys(data_dir: Path) -> dict[str, str]:
    """Keys a profile may publish with: ``operator_key`` from ``<data_dir>/secrets.json``
    and the demo staff keys from ``demo-credentials.json`` (both written by
    ``fairseat serve``); missing files give an empty answer."""
    keys: dict[str, str] = {}
    for name in ("secrets.json", "demo-credentials.json"):
        with contextlib.suppress(OSError, ValueError):
            keys.update(json.loads((data_dir / name).read_text()))
    return keys


def http_json(url: str, *, key: str = "", body: Any = None) -> Any:
    """One JSON request with the standard library (POST when ``body`` is given), for
    callers without an event loop (locust's ``test_start`` hook runs on gevent). An
    error answer raises RuntimeError with its status and the start of its body."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read()[:500]!r}") from exc


def publish_slots_sync(url: str, *, provider_id: str, key: str, plan: SlotPlan) -> list[str]:
    """``publish_slots`` with the standard library (see :func:`http_json`)."""
    ids: list[str] = []
    for body in publish_bodies(plan):
        answer = http_json(f"{url}/v1/providers/{provider_id}/slots", key=key, body=body)
        ids.extend(s["id"] for s in answer["slots"])
    return ids


def run_invariant_check(data_dir: Path, *, key_prefix: str | None = None) -> int:
    """``fairseat check-invariants`` in a child process (its own event loop, no gevent);
    its table goes to our stdout. Returns its exit code."""
    cmd = [sys.executable, "-m", "reservation.cli", "--log-level", "WARNING"]
    cmd += ["check-invariants", "--data-dir", str(data_dir)]
    if key_prefix:
        cmd += ["--key-prefix", key_prefix]
    return subprocess.run(cmd, check=False).returncode


def registration_body(n: int, salt: int) -> dict[str, str]:
    """A ``POST /v1/citizens`` body, distinct for each ``n`` under one ``salt``."""
    return {
        "name": f"压测{n}",
        "phone": phone_number(n, salt=salt),
        "id_number": id_number(n, salt=salt),
    }


def plan_day(plan: SlotPlan) -> str:
    """The (China) day on which ``plan``'s slots start, as ``GET /v1/slots?day=`` wants."""
    return (dt.datetime.now(CHINA) + dt.timedelta(days=plan.days_ahead)).date().isoformat()


@dataclass
class Tally:
    """Outcomes counted by a profile's users in this process, printed at the end."""

    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + n

    def snapshot(self) -> dict[str, int]:
        """The counts so far (a copy: locust sends it to the master from another greenlet)."""
        with self.lock:
            return dict(self.counts)

    def summary(self, title: str, *others: Mapping[str, int]) -> str:
        """One line: this tally plus ``others`` (the workers' snapshots, on a master)."""
        total = Counter(self.snapshot())
        for counts in others:
            total.update(counts)
        rows = sorted(total.items())
        return f"{title}: " + (", ".join(f"{k} {v:,}" for k, v in rows) or "nothing happened")
