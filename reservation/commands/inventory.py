"""`fairseat inventory rebuild | reconcile | status | dead-letters | replay-dead-letters`.

Each command shares a running ``fairseat serve``'s embedded servers (or starts its own, or
uses DATABASE_URL / REDIS_URL), applies migrations, and opens the usual services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from reservation.settings import Settings


def _run(settings: Settings, job: Callable[[Any], Awaitable[int]]) -> int:
    from reservation.runtime.serve import backends, dev_secrets
    from reservation.services import open_services
    from reservation.store.migrate import apply_migrations

    async def main(ready: Settings) -> int:
        assert ready.database_url is not None
        await apply_migrations(ready.database_url)
        async with open_services(ready, pg_pool_size=4) as services:
            return await job(services)

    with backends(dev_secrets(settings)) as ready:
        return asyncio.run(main(ready))


async def _rebuild(services: Any) -> int:
    from reservation.workflows.rebuild_inventory import rebuild_inventory

    report = await rebuild_inventory(services)
    print(json.dumps(report.to_dict(), indent=2))
    if report.oversold_slots:
        print("WARNING: Postgres holds more live bookings than capacity for the slots above")
    if report.oversold_seats:
        print("WARNING: Postgres holds two live tickets on the seat-segments above")
    if report.oversold_slots or report.oversold_seats:
        return 1
    print(f"Rebuilt; sales are open under epoch {report.epoch}.")
    return 0


async def _reconcile(services: Any) -> int:
    from reservation.workflows.rebuild_inventory import reconcile_inventory

    differences = await reconcile_inventory(services)
    for difference in differences:
        print(difference.describe())
    print(f"{len(differences)} difference(s) between Redis and Postgres.")
    return 1 if differences else 0


async def _status(services: Any) -> int:
    from reservation.workflows.rebuild_inventory import inventory_status

    status = await inventory_status(services)
    print(json.dumps(status, indent=2))
    return 0 if status["sales_open"] else 1


async def _dead_letters(services: Any) -> int:
    from reservation.workers.dead_letters import list_dead_letters

    letters = await list_dead_letters(services)
    for letter in letters:
        print(
            f"shard {letter.shard} entry {letter.entry_id} ({letter.fields.get('type')} "
            f"{letter.fields.get('hold', '')}): {letter.reason}"
        )
    print(f"{len(letters)} dead letter(s).")
    return 1 if letters else 0


async def _replay(services: Any) -> int:
    from reservation.workers.dead_letters import replay_dead_letters

    report = await replay_dead_letters(services)
    for letter, error in report.failed:
        print(f"still failing: shard {letter.shard} entry {letter.entry_id}: {error}")
    print(f"replayed {report.replayed}, still failing {len(report.failed)}.")
    return 1 if report.failed else 0


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    inventory = sub.add_parser("inventory", help="rebuild or check the live inventory")
    commands = inventory.add_subparsers(dest="inventory_command", required=True)
    for name, job, text in (
        ("rebuild", _rebuild, "close sales, rebuild Redis from Postgres, open sales"),
        ("reconcile", _reconcile, "print every difference between Redis and Postgres (exit 1)"),
        ("status", _status, "the epoch and whether sales are open (exit 1 if closed)"),
        ("dead-letters", _dead_letters, "list outbox entries the persister gave up on"),
        ("replay-dead-letters", _replay, "write dead letters to Postgres again (idempotent)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--data-dir", help="folder of the embedded servers")
        command.set_defaults(func=lambda args, job=job: _run(settings_from_args(args), job))
