"""The ``fairseat`` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from reservation.commands import COMMAND_MODULES
from reservation.settings import Settings, SettingsError


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides: dict[str, object] = {}
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "no_seed", False):
        overrides["seed_demo_data"] = False
    return settings.replace(**overrides) if overrides else settings


def cmd_serve(args: argparse.Namespace) -> int:
    from reservation.runtime.serve import serve

    return serve(_settings(args))


def cmd_worker(args: argparse.Namespace) -> int:
    from reservation.runtime.serve import _install_uvloop, dev_secrets, run_background

    settings = dev_secrets(_settings(args))
    if not (settings.database_url and settings.redis_url):
        raise SettingsError("fairseat worker needs DATABASE_URL and REDIS_URL")
    _install_uvloop()
    asyncio.run(
        run_background(
            settings, args.index, args.total, which=(args.name,), metrics_port=args.metrics_port
        )
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from reservation.store.migrate import apply_migrations

    settings = _settings(args)
    if not settings.database_url:
        raise SettingsError("DATABASE_URL is not set")
    applied = asyncio.run(apply_migrations(settings.database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from reservation.auth import new_api_key
    from reservation.runtime.serve import backends, dev_secrets
    from reservation.store import accounts as account_store
    from reservation.store import catalog
    from reservation.store.db import create_pool

    settings = dev_secrets(_settings(args))

    async def create(dsn: str) -> str:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                if args.provider and await catalog.get_provider(conn, args.provider) is None:
                    if not (args.provider_name and args.provider_kind):
                        raise SettingsError(
                            f"provider {args.provider!r} does not exist; pass --provider-name "
                            "and --provider-kind to create it"
                        )
                    await catalog.upsert_provider(
                        conn, args.provider, args.provider_name, args.provider_kind
                    )
                key = new_api_key()
                await account_store.create_api_key(
                    conn,
                    api_key=key,
                    role="staff" if args.provider else "operator",
                    provider_id=args.provider,
                    label=args.label,
                )
                return key
        finally:
            await pool.close()

    with backends(settings) as ready:
        assert ready.database_url is not None
        from reservation.store.migrate import apply_migrations

        asyncio.run(apply_migrations(ready.database_url))
        print(asyncio.run(create(ready.database_url)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "fairness":  # --- fairness (issue 5)
        from reservation.bench_fairness import run_bench_fairness

        run_bench_fairness(
            _settings(args),
            participants=args.participants,
            stock=args.stock,
            window_s=args.window,
            seed=args.seed,
        )
        return 0
    if args.what == "http":
        from reservation.bench_http import run_bench_http

        return run_bench_http(_settings(args), seconds=args.seconds, concurrency=args.concurrency)
    from reservation.bench import run_bench

    return run_bench(args.what, _settings(args), seconds=args.seconds, concurrency=args.concurrency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairseat", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (embedded servers if no URLs set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="HTTP worker processes (SO_REUSEPORT)")
    serve.add_argument("--data-dir", help="folder for embedded server data (default .fairseat)")
    serve.add_argument("--no-seed", action="store_true", help="do not seed demo data")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run one background worker alone")
    worker.add_argument(
        "name",
        # waitlist (issue 5), sampler: live stock/queue/waitlist gauges (issue 7)
        choices=["persister", "sweeper", "notifier", "waitlist", "sampler"],
    )
    worker.add_argument("--index", type=int, default=0, help="this worker's number (0-based)")
    worker.add_argument("--total", type=int, default=1, help="how many such workers run")
    worker.add_argument(
        "--metrics-port", type=int, help="serve this worker's Prometheus metrics on this port"
    )
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="create a staff or operator API key (printed once)")
    group = keys.add_mutually_exclusive_group(required=True)
    group.add_argument("--provider", help="staff key scoped to this provider id")
    group.add_argument("--operator", action="store_true", help="an operator key")
    keys.add_argument("--provider-name")
    keys.add_argument("--provider-kind", choices=["hospital", "vaccination", "railway"])
    keys.add_argument("--label", default="")
    keys.add_argument("--data-dir")
    keys.set_defaults(func=cmd_keys)

    bench = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    bench.add_argument("what", choices=["slots", "seats", "http", "fairness"])
    bench.add_argument("--seconds", type=float, default=3.0)
    bench.add_argument("--concurrency", type=int, default=64)
    # --- fairness (issue 5): `fairseat bench fairness` sizes
    bench.add_argument("--participants", type=int, default=1000, help="fairness: clients")
    bench.add_argument("--stock", type=int, default=500, help="fairness: places per sale")
    bench.add_argument("--window", type=int, default=10, help="fairness: opening window (s)")
    bench.add_argument("--seed", type=int, help="fairness: seed of the simulation's randomness")
    bench.set_defaults(func=cmd_bench)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, _settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"fairseat: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
