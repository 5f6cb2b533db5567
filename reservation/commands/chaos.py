"""``fairseat chaos [--short] [--seed N]``: a booking rush under SIGKILLs (see
``reservation.faults.chaos`` and docs/chaos.md)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_chaos(args: argparse.Namespace, settings: Any) -> int:
    from reservation.faults.chaos import FULL, SHORT, report, run_chaos

    if settings.database_url or settings.redis_url:
        # The harness kills and restarts the servers; it can only do that to its own.
        print("fairseat chaos starts its own throwaway servers: unset DATABASE_URL and REDIS_URL")
        return 2
    plan = SHORT if args.short else FULL
    if args.faults is not None:
        plan = dataclasses.replace(plan, faults=args.faults)
    outcome = run_chaos(
        plan,
        seed=args.seed,
        amnesia=not args.no_amnesia,
        drop_rate=args.drop_rate,
        keep_logs=Path(args.keep_logs) if args.keep_logs else None,
    )
    return report(outcome, plan, strict=args.strict)


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    chaos = sub.add_parser(
        "chaos",
        help="booking rush while killing Redis, Postgres and the service's processes",
        description="Runs a booking rush against throwaway servers while SIGKILLing Valkey "
        "(AOF on), the persister and the HTTP workers and stopping Postgres with -m "
        "immediate; then checks every invariant. Last line: faults=<n> confirmed=<n> "
        "lost=<n> oversold=<n> duplicates=<n>; exit code 1 if any of the last three is not 0.",
    )
    chaos.add_argument("--short", action="store_true", help="CI size: 12 faults (default 64)")
    chaos.add_argument("--seed", type=int, default=1, help="fault schedule and rush RNG seed")
    chaos.add_argument("--faults", type=int, help="override the number of faults")
    chaos.add_argument(
        "--no-amnesia",
        action="store_true",
        help="never wipe Redis's AOF (rebuild only when the service reports sales_closed)",
    )
    chaos.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="also drop this fraction of Redis replies (the service reaches Redis through "
        "a lossy proxy), e.g. 0.02",
    )
    chaos.add_argument(
        "--strict", action="store_true", help="also fail when reconcile finds differences"
    )
    chaos.add_argument("--keep-logs", help="copy the servers' and workers' logs to this folder")
    chaos.set_defaults(func=lambda args: cmd_chaos(args, settings_from_args(args)))
