"""A vaccine campaign opening: a district puts several days of sessions on sale at once.

Run against a running service (see docs/load-testing.md)::

    .venv/bin/locust -f loadtest/locustfile_vaccine.py --headless -u 300 -r 100 -t 60s \\
        --host http://127.0.0.1:8080

At start (on the master or the only process) the profile publishes, for provider
``--provider`` (default ``bj-dongcheng-cdc``, the demo vaccination site), ``--days`` days
of ``--sessions`` sessions with ``--capacity`` places each, all opening ``--release-in``
seconds later, with the operator key from ``<data dir>/secrets.json`` or ``--staff-key``.
Each user registers, prefers one day at random and falls back to the others, holds a
session with places left, pays; a share of them (``--cancel-share``) later cancel and book
again, so returned places go back on sale during the rush. 429/503 are retried after
``Retry-After`` with the same Idempotency-Key. At the end: a summary and the invariant
checker (exit code 1 if an invariant fails; ``--skip-invariants`` to skip).

Eligibility (age band, priority group) and dose series are not in the API yet; when they
are, users get a birth date and dose history here.
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
CAMPAIGN: dict[str, Any] = {"days": []}


def _options(parser: Any) -> None:
    parser.add_argument("--provider", default="bj-dongcheng-cdc", help="vaccination site id")
    parser.add_argument("--sessions", type=int, default=8, help="sessions per day")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=10, help="places per session")
    parser.add_argument("--release-in", type=float, default=5.0, help="seconds until opening")
    parser.add_argument("--first-day-ahead", type=int, default=12)
    parser.add_argument("--cancel-share", type=float, default=0.05)
    parser.add_argument("--staff-key", default="", help="default: operator key of data dir")
    parser.add_argument("--data-dir", default="", help="the service's data folder")
    parser.add_argument("--key-prefix", default="", help="the service's Redis key prefix")
    parser.add_argument("--skip-invariants", action="store_true")


def _plans(o: Any) -> list[SlotPlan]:
    return [
        SlotPlan(
            resources=1,  # one vaccination line, many sessions a day
            per_resource=o.sessions,
            capacity=o.capacity,
            release_in_s=o.release_in,
            days_ahead=o.first_day_ahead + d,
            code_prefix="vaccine",
        )
        for d in range(o.days)
    ]


def _publish(environment: Any, **_kw: Any) -> None:
    o = environment.parsed_options
    plans = _plans(o)
    CAMPAIGN.update(days=[plan_day(p) for p in plans], provider=o.provider)
    if isinstance(environment.runner, WorkerRunner):
        return  # the master publishes; users find the sessions by listing the days
    key = o.staff_key or service_keys(data_dir(o)).get("operator_key", "")
    total = sum(
        len(publish_slots_sync(environment.host, provider_id=o.provider, key=key, plan=p))
        for p in plans
    )
    print(f"published {total} sessions x {o.capacity} places, opening in {o.release_in:g} s")


class Resident(Citizen):
    tally = TALLY
    wait_time = between(0.3, 1.5)

    def on_start(self) -> None:
        if not self.register():
            return
        self.booked: str | None = None
        self.tries = itertools.count()
        days = list(CAMPAIGN["days"])
        random.shuffle(days)
        self.days = days  # preferred first

    def _sessions_with_places(self) -> list[str]:
        for day in self.days:
            with self.client.get(
                "/v1/slots",
                params={"provider_id": CAMPAIGN["provider"], "day": day},
                name="/v1/slots?day",
                catch_response=True,
            ) as resp:
                slots = resp.json().get("slots", []) if resp.status_code == 200 else []
            found = [s["id"] for s in slots if (s.get("available") or 0) > 0]
            if found:
                return found
        return []

    @task
    def campaign(self) -> None:
        if self.booked:
            if random.random() < self.environment.parsed_options.cancel_share:
                resp = self.post(
                    f"/v1/bookings/{self.booked}/cancel", "/v1/bookings/[id]/cancel", self.auth
                )
                TALLY.add(f"cancel {resp.status_code if resp is not None else 'none'}")
                self.booked = None
                random.shuffle(self.days)
            else:
                self.client.get("/v1/bookings", headers=self.auth, name="/v1/bookings")
            return
        sessions = self._sessions_with_places()
        if not sessions:
            TALLY.add("saw nothing left")
            return
        held = self.post(
            "/v1/bookings",
            "/v1/bookings",
            {**self.auth, "Idempotency-Key": f"vac-{id(self):x}-{next(self.tries)}"},
            {"slot_id": random.choice(sessions)},
        )
        self.booked = self.pay_for(held, lambda hold_id: f"/v1/bookings/{hold_id}/confirm")


install_hooks("vaccine campaign opening", TALLY, options=_options, publish=_publish)
