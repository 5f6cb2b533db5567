"""What every locust profile does around its users: its options, publishing the inventory
at start, and at the end a summary plus the invariant checker (exit code 1 on a failure).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import WorkerRunner

from loadtest.scenarios import Tally, run_invariant_check
from reservation.settings import Settings

TALLY_KEY = "fairseat_tally"  # our entry in a worker's stats report


def data_dir(options: Any) -> Path:
    """The service's data folder: ``--data-dir``, else the one its settings name."""
    return Path(options.data_dir) if options.data_dir else Settings.from_env().data_dir


def install(
    title: str,
    tally: Tally,
    *,
    options: Callable[[Any], None],
    publish: Callable[..., None],
) -> None:
    verdict: dict[str, str] = {}
    # Distributed (--processes N, or --master/--worker): the users run in the workers, so
    # each worker adds its counts so far to every stats report (the last one is sent when
    # the master tells it to quit, before the master's summary), and the master keeps the
    # latest per worker.
    workers: dict[str, dict[str, int]] = {}

    def send_counts(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        data[TALLY_KEY] = tally.snapshot()

    def keep_counts(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        if TALLY_KEY in data:
            workers[client_id] = data[TALLY_KEY]

    def check(environment: Any, **_kw: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        n = len(workers)
        scope = f"{n} worker process{'es' if n > 1 else ''}" if workers else "this process"
        print(tally.summary(f"{title} ({scope})", *workers.values()))
        o = environment.parsed_options
        if o.skip_invariants:
            return
        code = run_invariant_check(data_dir(o), key_prefix=o.key_prefix or None)
        verdict["invariants"] = "PASS" if code == 0 else "FAIL"
        if code != 0:
            environment.process_exit_code = 1

    def last_word(exit_code: int, **_kw: Any) -> None:
        if "invariants" in verdict:
            print(f"invariants: {verdict['invariants']} (table above the statistics)")

    # Registered by call, not decorator: locust's event hooks are untyped.
    hooks: Any = events
    hooks.init_command_line_parser.add_listener(options)
    hooks.test_start.add_listener(publish)
    hooks.report_to_master.add_listener(send_counts)
    hooks.worker_report.add_listener(keep_counts)
    hooks.quitting.add_listener(check)
    hooks.quit.add_listener(last_word)
