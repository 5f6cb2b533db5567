"""The Spring Festival rush (春运): a crowd that searches far more than it books, hammers
the sale opening, and keeps refreshing for returned places after the sell-out.

Run against a running service (see docs/load-testing.md)::

    .venv/bin/locust -f loadtest/locustfile_rush.py --headless -u 500 -r 100 -t 60s \\
        --host http://127.0.0.1:8080

For now the inventory is slots (``--product slots``): trains are being wired to HTTP. The
user's behaviour is written against a small ``Product`` interface (publish the inventory
at start, search it, hold one choice, pay for it, cancel it), so a ``SeatProduct`` (train
runs, origin–destination search, seat orders for up to 5 passengers) slots in later
without touching the crowd.

At start (on the master or the only process) ``--product`` publishes its inventory
(``--units`` units x ``--capacity`` places, opening ``--release-in`` s later). Each user
registers, searches ``--searches-per-try`` times (10:1 by default, like 余票 queries at
12306) per booking attempt, holds something with places left, pays; a share
(``--return-share``) of the buyers return what they bought a few actions later (a
refund), which the refreshing crowd then finds. 429/503 are retried after
``Retry-After`` with the same Idempotency-Key. At the end: a summary and the invariant
checker (exit code 1 on a failure).
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Protocol

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
STATE: dict[str, Any] = {}


class Product(Protocol):
    """What the rush sells. Slots now; train seats (``SeatProduct``) later."""

    def publish(self, host: str, key: str) -> int: ...

    def search(self, user: RushUser) -> list[str]:
        """Choices with places left (ids), as the user sees them now."""
        ...

    def hold(self, user: RushUser, choice: str, key: str) -> Any: ...

    def confirm_path(self, hold_id: str) -> str: ...

    def cancel_path(self, hold_id: str) -> str: ...


class SlotProduct:
    def __init__(self, options: Any) -> None:
        self.plan = SlotPlan(
            resources=options.units,
            per_resource=1,
            capacity=options.capacity,
            release_in_s=options.release_in,
            days_ahead=options.days_ahead,
            code_prefix="rush",
        )
        self.provider = options.provider
        self.day = plan_day(self.plan)

    def publish(self, host: str, key: str) -> int:
        return len(publish_slots_sync(host, provider_id=self.provider, key=key, plan=self.plan))

    def search(self, user: RushUser) -> list[str]:
        with user.client.get(
            "/v1/slots",
            params={"provider_id": self.provider, "day": self.day},
            name="search /v1/slots",
            catch_response=True,
        ) as resp:
            slots = resp.json().get("slots", []) if resp.status_code == 200 else []
        return [s["id"] for s in slots if (s.get("available") or 0) > 0]

    def hold(self, user: RushUser, choice: str, key: str) -> Any:
        return user.post(
            "/v1/bookings",
            "/v1/bookings",
            {**user.auth, "Idempotency-Key": key},
            {"slot_id": choice},
        )

    def confirm_path(self, hold_id: str) -> str:
        return f"/v1/bookings/{hold_id}/confirm"

    def cancel_path(self, hold_id: str) -> str:
        return f"/v1/bookings/{hold_id}/cancel"


PRODUCTS = {"slots": SlotProduct}  # "seats": SeatProduct, with the train API


def _options(parser: Any) -> None:
    parser.add_argument("--product", choices=sorted(PRODUCTS), default="slots")
    parser.add_argument("--provider", default="pumch", help="slots: provider id")
    parser.add_argument("--units", type=int, default=20, help="slots: resources, one slot each")
    parser.add_argument("--capacity", type=int, default=10, help="places per unit")
    parser.add_argument("--release-in", type=float, default=5.0, help="seconds until opening")
    parser.add_argument("--days-ahead", type=int, default=14)
    parser.add_argument("--searches-per-try", type=int, default=10)
    parser.add_argument("--return-share", type=float, default=0.02)
    parser.add_argument("--staff-key", default="", help="default: operator key of data dir")
    parser.add_argument("--data-dir", default="", help="the service's data folder")
    parser.add_argument("--key-prefix", default="", help="the service's Redis key prefix")
    parser.add_argument("--skip-invariants", action="store_true")


def _publish(environment: Any, **_kw: Any) -> None:
    o = environment.parsed_options
    product: Product = PRODUCTS[o.product](o)
    STATE["product"] = product
    if isinstance(environment.runner, WorkerRunner):
        return  # the master publishes; users find the inventory by searching
    key = o.staff_key or service_keys(data_dir(o)).get("operator_key", "")
    count = product.publish(environment.host, key)
    print(f"published {count} units x {o.capacity} places, opening in {o.release_in:g} s")


class RushUser(Citizen):
    tally = TALLY
    wait_time = between(0.05, 0.5)  # impatient: refresh, refresh, refresh

    def on_start(self) -> None:
        if not self.register():
            return
        self.product: Product = STATE["product"]
        self.bought: str | None = None
        self.will_return = False
        self.tries = itertools.count()
        self.seen: list[str] = []
        self.searches = 0

    @task
    def rush(self) -> None:
        o = self.environment.parsed_options
        if self.bought:
            # A returner gives the ticket back a few actions after buying it.
            if self.will_return and random.random() < 0.2:
                resp = self.post(
                    self.product.cancel_path(self.bought), "/v1/bookings/[id]/cancel", self.auth
                )
                TALLY.add(f"returned {resp.status_code if resp is not None else 'none'}")
                self.bought = None  # and back into the crowd
            return
        self.seen = self.product.search(self)
        self.searches += 1
        if self.searches % o.searches_per_try or not self.seen:
            if not self.seen:
                TALLY.add("searched: nothing left")
            return
        held = self.product.hold(
            self, random.choice(self.seen), f"rush-{id(self):x}-{next(self.tries)}"
        )
        self.bought = self.pay_for(held, self.product.confirm_path)
        if self.bought:
            self.will_return = random.random() < o.return_share


install_hooks("spring festival rush", TALLY, options=_options, publish=_publish)
