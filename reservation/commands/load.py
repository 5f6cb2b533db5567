"""`fairseat load …` (the lean load generator) and `fairseat check-invariants`.

See docs/load-testing.md. Both run against a service that is already up: ``--url`` for
HTTP, and for set-up shortcuts and checks the service's Postgres/Redis and secrets, taken
from the environment or, for ``fairseat serve`` with embedded servers, from
``<data dir>/runtime.json`` and ``<data dir>/secrets.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

from reservation.settings import Settings, SettingsError

SCENARIOS = ("slot-rush", "healthz")


def _stored_secrets(settings: Settings) -> dict[str, str]:
    try:
        stored: dict[str, str] = json.loads((settings.data_dir / "secrets.json").read_text())
    except (OSError, ValueError):
        return {}
    return stored


def _with_secrets(settings: Settings) -> Settings:
    """Fill unset secrets from the data folder, never creating any."""
    stored = _stored_secrets(settings)
    return settings.replace(
        secret_key=settings.secret_key or stored.get("secret_key"),
        operator_key=settings.operator_key or stored.get("operator_key"),
    )


def _with_urls(settings: Settings) -> Settings:
    from loadtest.invariants import resolve_urls

    try:
        return resolve_urls(settings)
    except SettingsError:
        return settings


async def _prepare_rush(args: argparse.Namespace, settings: Settings) -> Any:
    from loadtest.generator import new_session
    from loadtest.scenarios import (
        SlotPlan,
        SlotRushOp,
        insert_citizens,
        publish_slots,
        register_citizens,
    )

    key = args.key or settings.operator_key
    if not key:
        raise SettingsError(
            "publishing slots needs a staff or operator key: --key, FAIRSEAT_OPERATOR_KEY, "
            "or <data dir>/secrets.json of a `fairseat serve`"
        )
    plan = SlotPlan(
        resources=args.resources,
        per_resource=args.slots_per_resource,
        capacity=args.capacity,
        release_in_s=args.release_in,
    )
    async with new_session(64) as session:
        slot_ids = await publish_slots(
            session, args.url, provider_id=args.provider, key=key, plan=plan
        )
        if settings.database_url and settings.secret_key and not args.register_via_api:
            how = "inserted in Postgres, tokens signed with the service's secret"
            citizens = await insert_citizens(
                settings.database_url, settings.secret_key, args.citizens
            )
        else:
            how = "registered through POST /v1/citizens"
            citizens = await register_citizens(session, args.url, args.citizens)
    print(
        f"set-up: {len(slot_ids)} slots x {plan.capacity} places published for "
        f"{args.provider}; {len(citizens)} citizens {how}"
    )
    return SlotRushOp(args.url, citizens, slot_ids), slot_ids


def cmd_load(args: argparse.Namespace, settings_from_args: Callable[..., Any]) -> int:
    from loadtest.generator import LoadSpec, run
    from loadtest.invariants import check_invariants
    from loadtest.scenarios import Healthz

    if args.mode == "open" and not args.rate:
        raise SettingsError("--mode open needs --rate")
    settings = _with_urls(_with_secrets(settings_from_args(args)))
    if args.key_prefix:
        settings = settings.replace(key_prefix=args.key_prefix)
    args.url = args.url.rstrip("/")
    slot_ids: list[str] | None = None
    if args.scenario == "slot-rush":
        op, slot_ids = asyncio.run(_prepare_rush(args, settings))
    else:
        op = Healthz(args.url)
    spec = LoadSpec(
        seconds=args.duration,
        concurrency=args.concurrency,
        rate=args.rate if args.mode == "open" else None,
        processes=args.processes,
        client=args.client,
    )
    result = run(op, spec)
    print(result.summary())
    if args.scenario == "slot-rush" and args.processes == 1:
        print(f"confirmed bookings: {len(op.confirmed):,}")
        print("refusals: " + (", ".join(f"{k}: {v:,}" for k, v in sorted(op.refusals.items()))))
    if not args.check:
        return 0
    report = asyncio.run(
        check_invariants(
            settings,
            drain_timeout=args.drain_timeout,
            slot_ids=slot_ids,
            expected_confirmed=op.confirmed
            if slot_ids is not None and args.processes == 1
            else None,
        )
    )
    print(report.table())
    return 0 if report.ok else 1


def cmd_check(args: argparse.Namespace, settings_from_args: Callable[..., Any]) -> int:
    from loadtest.invariants import run_check

    settings = settings_from_args(args)
    if args.key_prefix:
        settings = settings.replace(key_prefix=args.key_prefix)
    return run_check(settings, drain_timeout=args.drain_timeout)


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    load = sub.add_parser(
        "load",
        help="the lean load generator (closed or open loop) against a running service",
        description="Send load to a running service and print rate, latency percentiles "
        "(from a log-linear histogram) and answers by status.",
    )
    load.add_argument("--url", default="http://127.0.0.1:8080", help="the service's base URL")
    load.add_argument("--scenario", choices=SCENARIOS, default="slot-rush")
    load.add_argument("--mode", choices=["closed", "open"], default="closed")
    load.add_argument("--rate", type=float, help="open loop: requests (operations) per second")
    load.add_argument(
        "--concurrency", type=int, default=64, help="closed loop: workers (all processes)"
    )
    load.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    load.add_argument("--processes", type=int, default=1, help="generator processes (fork)")
    load.add_argument(
        "--client",
        choices=["aiohttp", "raw"],
        default="aiohttp",
        help="HTTP client: aiohttp, or a minimal keep-alive client for ceilings",
    )
    load.add_argument("--citizens", type=int, default=2000, help="slot-rush: citizens")
    load.add_argument("--resources", type=int, default=20, help="slot-rush: doctors/lines")
    load.add_argument("--slots-per-resource", type=int, default=2)
    load.add_argument("--capacity", type=int, default=30, help="slot-rush: places per slot")
    load.add_argument("--release-in", type=float, default=-1.0, help="slot-rush: release after N s")
    load.add_argument("--provider", default="pumch", help="slot-rush: publish for this provider")
    load.add_argument("--key", help="staff/operator key for publishing (default: operator key)")
    load.add_argument(
        "--register-via-api",
        action="store_true",
        help="register citizens through the API even when Postgres is reachable",
    )
    load.add_argument("--check", action="store_true", help="run the invariant checker after")
    load.add_argument("--drain-timeout", type=float, default=60.0)
    load.add_argument("--data-dir", help="data folder of `fairseat serve` (default .fairseat)")
    load.add_argument("--key-prefix", help="Redis key prefix of the service (default fs)")
    load.set_defaults(func=lambda args: cmd_load(args, settings_from_args))

    check = sub.add_parser(
        "check-invariants",
        help="after a load run: exact counts in Postgres and Redis; exit 1 on a failure",
    )
    check.add_argument("--drain-timeout", type=float, default=60.0)
    check.add_argument("--data-dir", help="data folder of `fairseat serve` (default .fairseat)")
    check.add_argument("--key-prefix", help="Redis key prefix of the service (default fs)")
    check.set_defaults(func=lambda args: cmd_check(args, settings_from_args))
