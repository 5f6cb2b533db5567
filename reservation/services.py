"""The long-lived clients a process needs, opened and closed together.

Used by the HTTP app (through ``cleanup_ctx``), by the workers and by CLI commands, so
every entry point wires things the same way.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

from inventory.account_gate import AccountGate
from inventory.fast_connection import HiredisPackConnection
from inventory.hospital_gate import HospitalInventory  # hospital (issue 6)
from inventory.keys import Keys
from inventory.script_client import ScriptClient
from inventory.seat_engine import SeatEngine
from inventory.slot_engine import SlotEngine
from inventory.waitlist_engine import Freeing  # waitlist (issue 5)
from reservation.auth import Authenticator, TokenSigner
from reservation.domain.clock import Clock, system_clock
from reservation.fairness.waiting_room import WaitingRoom  # fairness (issue 5)
from reservation.metrics import Metrics
from reservation.settings import Settings, SettingsError
from reservation.store.bookings import FencedBooking, upsert_bookings_fenced
from reservation.store.db import create_pool, is_transient
from reservation.store.group_commit import GroupCommit


@dataclass
class Services:
    settings: Settings
    pool: Any
    redis: Any
    keys: Keys
    slots: SlotEngine
    gate: AccountGate
    seats: SeatEngine
    # Confirmed bookings, committed together with those of concurrent requests.
    booking_commits: GroupCommit[FencedBooking]  # the confirms' commits (epoch-fenced)
    auth: Authenticator
    metrics: Metrics
    clock: Clock
    id_hmac_key: bytes
    secret_key: bytes
    # --- hospital (issue 6): day gate across departments, session close, standby handover
    hospital: HospitalInventory
    # --- fairness (issue 5): waiting rooms, queue tokens, rate limits of the hold path
    waiting_room: WaitingRoom


def redis_client(settings: Settings, *, max_connections: int | None = None) -> Any:
    if settings.redis_url is None:
        raise SettingsError("REDIS_URL is not set")
    size = max_connections or settings.redis_pool_size
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url, decode_responses=True, max_connections=size
        )
    # A blocking pool queues callers when every connection is busy (then times out into
    # a 503) instead of failing at once with "Too many connections".
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        max_connections=size,
        timeout=5,
        # Commands packed in C: our script calls carry many arguments (fast_connection).
        # (redis-py's cluster client fixes its connection class, so it packs in Python.)
        connection_class=HiredisPackConnection,
    )
    return redis_asyncio.Redis(connection_pool=pool)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    metrics: Metrics | None = None,
    pg_pool_size: int = 20,
) -> AsyncIterator[Services]:
    if settings.database_url is None:
        raise SettingsError("DATABASE_URL is not set")
    if not (settings.secret_key and settings.id_hmac_key):
        raise SettingsError("FAIRSEAT_SECRET_KEY and FAIRSEAT_ID_HMAC_KEY must be set")
    pool = await create_pool(settings.database_url, max_size=pg_pool_size)
    client = redis_client(settings)
    keys = Keys(prefix=settings.key_prefix, shard_count=settings.shard_count)
    # One pipelining script client per process, shared by the engine and the gate.
    calls = ScriptClient(client)
    commits: GroupCommit[FencedBooking] = GroupCommit(
        pool,
        functools.partial(upsert_bookings_fenced, prefix=keys.prefix),
        retry_alone=lambda exc: not is_transient(exc),
        # --- speed (issue 7): one statement is atomic by itself (no BEGIN/COMMIT)
        transaction=False,
    )
    slots = SlotEngine(client, keys, calls=calls)
    # --- waitlist (issue 5): freed places cool, go to the waitlist first, then back on sale
    seats = SeatEngine(client, keys, clock=clock, calls=calls)
    slots.freeing = seats.freeing = Freeing(
        client,
        keys,
        handoff_ms=(settings.handoff_delay_min_ms, settings.handoff_delay_max_ms),
    )
    # --- fairness (issue 5): scripts loaded up front (a cluster fails NOSCRIPT bursts)
    room = WaitingRoom(
        client=client,
        keys=keys,
        calls=calls,
        pool=pool,
        settings=settings,
        clock=clock,
        secret=settings.secret_key.encode(),
        slots=slots,
    )
    # Redis not up yet: redis-py then loads each script on its first call instead.
    with contextlib.suppress(redis_asyncio.RedisError, OSError):
        await room.load()
    try:
        secret = settings.secret_key.encode()
        yield Services(
            settings=settings,
            pool=pool,
            redis=client,
            keys=keys,
            slots=slots,
            gate=AccountGate(client, keys, calls),
            seats=seats,
            booking_commits=commits,
            auth=Authenticator(
                TokenSigner(secret, settings.token_ttl_seconds), pool, settings.operator_key
            ),
            metrics=metrics or Metrics(),
            clock=clock,
            id_hmac_key=settings.id_hmac_key.encode(),
            secret_key=secret,
            hospital=HospitalInventory(client, keys, calls, slots),  # hospital (issue 6)
            waiting_room=room,  # fairness (issue 5)
        )
    finally:
        await room.aclose()  # fairness (issue 5)
        await commits.aclose()
        await calls.aclose()
        if settings.redis_cluster:
            await client.aclose()
        else:
            # The pool was passed in explicitly, so the client does not own it by default.
            await client.aclose(close_connection_pool=True)
        await pool.close()
