"""`fairseat timetable import FILE` and `fairseat timetable seed-demo`.

Both use the servers of a running ``fairseat serve`` on the same data folder, or start
embedded ones (see ``reservation.runtime.serve.backends``), and apply migrations first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reservation.settings import Settings


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    group = sub.add_parser("timetable", help="train timetables: import a file, seed the demo")
    commands = group.add_subparsers(dest="timetable_command", required=True)

    load = commands.add_parser(
        "import", help="import a timetable file (JSON, or CSV by .csv suffix; docs/trains.md)"
    )
    load.add_argument("file", type=Path)
    load.add_argument("--data-dir")
    load.set_defaults(func=lambda args: _import(settings_from_args(args), args.file))

    seed = commands.add_parser("seed-demo", help="seed the demo railway (once)")
    seed.add_argument(
        "--days",
        type=int,
        help="sale horizon used to create runs (default FAIRSEAT_TRAIN_SALE_DAYS)",
    )
    seed.add_argument("--data-dir")
    seed.set_defaults(func=lambda args: _seed(settings_from_args(args), args.days))


def _run(settings: Settings, work: Callable[[Any], Any]) -> Any:
    from reservation.runtime.serve import backends, dev_secrets
    from reservation.services import open_services
    from reservation.store.migrate import apply_migrations

    settings = dev_secrets(settings)

    async def main(ready: Settings) -> Any:
        assert ready.database_url is not None
        await apply_migrations(ready.database_url)
        async with open_services(ready, pg_pool_size=2) as services:
            return await work(services)

    with backends(settings) as ready:
        return asyncio.run(main(ready))


def _import(settings: Settings, path: Path) -> int:
    from reservation.errors import ValidationFailed
    from reservation.workflows import import_timetable as importer

    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"Cannot read {path}: {exc.strerror or exc}")
        return 2
    # Parsed before any server is started: a bad file changes nothing and needs none.
    try:
        if path.suffix.lower() == ".csv":
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                print(f"Not UTF-8 ({path}): byte {exc.start} cannot be decoded.")
                return 1
            timetable = importer.parse_csv(text)
        else:
            timetable = importer.parse_json_bytes(raw)
    except ValidationFailed as exc:
        return _print_refusal(exc, path)

    async def work(services: Any) -> dict[str, int]:
        result = await importer.import_timetable(services, timetable)
        return result.to_dict()

    try:
        print(json.dumps(_run(settings, work)))
    except ValidationFailed as exc:
        return _print_refusal(exc, path)
    return 0


def _print_refusal(exc: Any, path: Path) -> int:
    print(f"{exc.message} ({path})")
    for error in exc.fields.get("errors", []):
        print(f"  {error['section']} row {error['row']}: {error['field']}: {error['message']}")
    return 1


def _seed(settings: Settings, days: int | None) -> int:
    from reservation.trains_seed import seed_trains

    if days is not None:
        settings = settings.replace(train_sale_days=days)

    async def work(services: Any) -> int:
        return await seed_trains(services)

    created = _run(settings, work)
    print(f"runs created: {created}" if created else "already seeded (trains exist)")
    return 0
