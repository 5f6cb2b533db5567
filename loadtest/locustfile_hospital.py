"""The 07:00 hospital release: patients wait for a department's registrations to open.

Run against a running service (see docs/load-testing.md)::

    .venv/bin/locust -f loadtest/locustfile_hospital.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:8080

At start (``test_start``, on the master or the only process) the profile publishes
``--doctors`` doctors with ``--slots-per-doctor`` slots of ``--capacity`` places that open
``--release-in`` seconds later, for provider ``--provider`` (default ``pumch``, the demo
hospital), with the operator key from ``<data dir>/secrets.json`` or ``--staff-key``.
Each user registers once (``POST /v1/citizens``), refreshes the day's slot list like
someone waiting for 07:00, tries to hold a place with stock (409 ``not_released`` until
the release), pays at once, then only looks at its bookings. 429/503 are retried after
``Retry-After`` with the same Idempotency-Key. At the end it prints what happened and runs
the invariant checker (exit code 1 if an invariant fails; ``--skip-invariants`` to skip).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from locust import between, task
from locust.runners import WorkerRunner

from loadtest.locust_citizen import Citizen
from loadtest.locust_hooks import data_dir
from loadtest.locust_hooks import install as install_hooks
from loadtest.scenarios import (
    SlotPlan,
    Tally,
    plan_day,
    publish_slots_sync,
    service_keys,
)

TALLY = Tally()
PLAN: dict[str, Any] = {}


def _options(parser: Any) -> None:
    parser.add_argument("--provider", default="pumch", help="hospital provider id")
    parser.add_argument("--doctors", type=int, default=10)
    parser.add_argument("--slots-per-doctor", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=5, help="places per slot")
    parser.add_argument("--release-in", type=float, default=10.0, help="seconds until 07:00")
    parser.add_argument("--days-ahead", type=int, default=9)
    parser.add_argument("--staff-key", default="", help="default: operator key of data dir")
    parser.add_argument("--data-dir", default="", help="the service's data folder")
    parser.add_argument("--key-prefix", default="", help="the service's Redis key prefix")
    parser.add_argument("--skip-invariants", action="store_true")


def _publish(environment: Any, **_kw: Any) -> None:
    o = environment.parsed_options
    plan = SlotPlan(
        resources=o.doctors,
        per_resource=o.slots_per_doctor,
        capacity=o.capacity,
        release_in_s=o.release_in,
        days_ahead=o.days_ahead,
        code_prefix="hospital",
    )
    PLAN.update(day=plan_day(plan), provider=o.provider)
    if isinstance(environment.runner, WorkerRunner):
        return  # the master publishes; users find the slots by listing the day
    key = o.staff_key or service_keys(data_dir(o)).get("operator_key", "")
    ids = publish_slots_sync(environment.host, provider_id=o.provider, key=key, plan=plan)
    print(f"published {len(ids)} slots x {o.capacity} places, release in {o.release_in:g} s")


class Patient(Citizen):
    tally = TALLY
    wait_time = between(0.2, 1.0)  # refreshing the page while waiting for 07:00

    def on_start(self) -> None:
        if not self.register():
            return
        self.booked: str | None = None
        self.tries = itertools.count()

    @task
    def book_or_look(self) -> None:
        if self.booked:
            self.client.get("/v1/bookings", headers=self.auth, name="/v1/bookings")
            return
        with self.client.get(
            "/v1/slots",
            params={"provider_id": PLAN["provider"], "day": PLAN["day"]},
            name="/v1/slots",
            catch_response=True,
        ) as resp:
            slots = resp.json().get("slots", []) if resp.status_code == 200 else []
        open_slots = [s["id"] for s in slots if (s.get("available") or 0) > 0]
        if not open_slots:
            TALLY.add("saw nothing left")
            return
        key = f"hosp-{id(self):x}-{next(self.tries)}"
        held = self.post(
            "/v1/bookings",
            "/v1/bookings",
            {**self.auth, "Idempotency-Key": key},
            {"slot_id": random.choice(open_slots)},
        )
        self.booked = self.pay_for(held, lambda hold_id: f"/v1/bookings/{hold_id}/confirm")


install_hooks("hospital 07:00 release", TALLY, options=_options, publish=_publish)
