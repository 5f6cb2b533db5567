"""The Spring Festival rush (春运): many citizens, a few popular trains, an opening at a
release time; the crowd searches far more than it books, hammers the opening, and keeps
refreshing for returned tickets after the sell-out.

Run against a running service (see docs/load-testing.md)::

    .venv/bin/locust -f loadtest/locustfile_rush.py --headless -u 500 -r 100 -t 60s \\
        --host http://127.0.0.1:8080

The user's behaviour is written against a small ``Product`` interface (publish the
inventory at start, search it, hold one choice, pay for it, give it back), so the same
crowd buys either of:

- ``--product seats`` (the default, ``SeatProduct``): one timetable per run is imported
  (``POST /v1/timetables``): ``--units`` G trains (3) on the profile's own 5-station line,
  each with ``--capacity`` second-class seats (100), running on one date ``--days-ahead``
  days ahead, clamped to 1..13 (China time) so it is always on sale and not departed. Each
  user picks a trip (most end to end, some shorter, so segment inventory is exercised),
  searches ``GET /v1/trains/search`` and holds a seat on a run with seats left for the
  account holder (``POST /v1/orders``), pays (``/pay``); a return is a refund
  (``/refund``). Earlier runs' trains on the same line and date stay on sale; users
  book only this run's trains, so each run's count is its own.
- ``--product slots`` (``SlotProduct``): ``--units`` resources (20) with one slot each of
  ``--capacity`` places (10) at pumch, released ``--release-in`` s after the start.

The opening: a train's release is a daily setting of the service (08:00 China time) that a
load test cannot move, so for seats the opening is modelled on the crowd's side: users
search from the start but try to hold only from ``--release-in`` s (5) after the test
start, and then at once (the rush). Slots are released by the service itself at that time
(409 ``not_released`` before it).

Each user registers, searches ``--searches-per-try`` times (10:1 by default, like 余票
queries at 12306) per booking attempt, holds something with places left; a share
(``--abandon-share``, 5 %) cancel the unpaid hold instead of paying (its places go back on
sale), the others pay; a share (``--return-share``, 2 %) of the buyers return what they
bought a few actions later, which the refreshing crowd then finds. 429/503 are retried
after ``Retry-After`` with the same Idempotency-Key. At the end: a summary and the
invariant checker (exit code 1 on a failure).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from locust import between, task
from locust.runners import WorkerRunner

from loadtest.locust_citizen import Citizen
from loadtest.locust_hooks import data_dir
from loadtest.locust_hooks import install as install_hooks
from loadtest.scenarios import (
    SlotPlan,
    Tally,
    http_json,
    plan_day,
    publish_slots_sync,
    service_keys,
)
from reservation.domain.clock import CHINA

TALLY = Tally()
STATE: dict[str, Any] = {}


class Product(Protocol):
    """What the rush sells: train seats (``SeatProduct``) or slots (``SlotProduct``)."""

    unit: str  # what ``publish`` counts, for the start line
    opens_at: float  # epoch seconds from which users try to hold (0: the service decides)

    def publish(self, host: str, key: str) -> int:
        """Create the inventory (once per run, on the master); how many units."""
        ...

    def start(self, user: RushUser) -> Any:
        """What this user wants (kept as ``user.wants``); None: the user leaves."""
        ...

    def search(self, user: RushUser) -> list[str]:
        """Choices with places left (ids), as the user sees them now."""
        ...

    def hold(self, user: RushUser, choice: str, key: str) -> Any: ...

    def confirm_path(self, hold_id: str) -> str:
        """Pay for a hold (POST, no body; 200 when paid)."""
        ...

    def cancel_path(self, hold_id: str) -> str:
        """Give back what was paid for (POST, no body)."""
        ...

    def abandon_path(self, hold_id: str) -> str:
        """Let go of an unpaid hold (POST, no body)."""
        ...


class SlotProduct:
    unit = "slots"
    opens_at = 0.0  # the slots' release_at: the service refuses holds before it

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

    def start(self, user: RushUser) -> Any:
        return True

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

    def abandon_path(self, hold_id: str) -> str:
        return f"/v1/bookings/{hold_id}/cancel"


# The profile's own line. Fixed codes (no demo station starts with Y) so that workers find
# it without being told; importing a station again only renames it.
RUSH_LINE = "chunyun-rush"
STATIONS = (
    ("YRA", "春运北", "Chunyun North", 0),
    ("YRB", "春运东", "Chunyun East", 118),
    ("YRC", "春运中", "Chunyun Central", 256),
    ("YRD", "春运西", "Chunyun West", 403),
    ("YRE", "春运南", "Chunyun South", 562),
)
END_TO_END_SHARE = 0.7  # the rest ride a shorter segment


@dataclass(frozen=True)
class Traveller:
    origin: str
    destination: str
    passenger_id: str  # the account holder, who travels alone


def rush_timetable(numbers: list[str], capacity: int, date: dt.date) -> tuple[dict[str, Any], int]:
    """The ``POST /v1/timetables`` body of ``numbers`` G trains on the rush line on
    ``date``, each with at least ``capacity`` second-class seats (2+3 coaches); and the
    seats per train."""
    rows = max(1, math.ceil(capacity / 5))
    coaches = [
        {"coach": f"{c + 1:02d}", "class": "second", "layout": "2+3", "rows": min(40, left)}
        for c, left in enumerate(range(rows, 0, -40))
    ]
    spacing = max(1, min(60, 14 * 60 // max(1, len(numbers))))
    trains = []
    for i, number in enumerate(numbers):
        clock = 7 * 60 + i * spacing  # 07:00 to 21:00: every stop is left on the one date
        stops: list[dict[str, Any]] = []
        for k, (code, _, _, km) in enumerate(STATIONS):
            if k:
                clock += (km - STATIONS[k - 1][3]) // 4 + 4  # ~250 km/h, brake and start
            stop: dict[str, Any] = {"station": code, "km": km}
            if k:
                stop["arrive"] = f"{clock // 60:02d}:{clock % 60:02d}"
            if k < len(STATIONS) - 1:
                clock += 0 if k == 0 else 2  # dwell
                stop["depart"] = f"{clock // 60:02d}:{clock % 60:02d}"
            stops.append(stop)
        trains.append(
            {
                "number": number,
                "line": RUSH_LINE,
                "composition": f"rush-2x3-{rows}r",
                "calendar": {"from": date.isoformat(), "to": date.isoformat()},
                "stops": stops,
            }
        )
    body = {
        "stations": [
            {"code": c, "name_zh": zh, "name_en": en, "city": en} for c, zh, en, _ in STATIONS
        ],
        "lines": [{"code": RUSH_LINE, "name": "春运 Spring Festival rush line (load test)"}],
        "compositions": [
            {"id": f"rush-2x3-{rows}r", "description": "load test", "coaches": coaches}
        ],
        "trains": trains,
    }
    return body, rows * 5


class SeatProduct:
    unit = "trains"

    def __init__(self, options: Any) -> None:
        self.units = options.units
        self.capacity = options.capacity
        # Tomorrow at the earliest (nothing departed), today + 13 at most (on sale before
        # the daily 08:00 release too).
        today = dt.datetime.now(CHINA).date()
        self.date = today + dt.timedelta(days=min(13, max(1, options.days_ahead)))
        self.opens_at = time.time() + options.release_in
        # This run's trains: earlier runs' trains on the line and date are on sale too,
        # and users leave them alone. Workers get the master's list with its options.
        self.numbers: frozenset[str] = frozenset(getattr(options, "rush_trains", None) or ())

    def publish(self, host: str, key: str) -> int:
        numbers = [f"G{n}" for n in random.sample(range(10_000, 100_000), self.units)]
        self.numbers = frozenset(numbers)
        body, seats = rush_timetable(numbers, self.capacity, self.date)
        done = http_json(f"{host}/v1/timetables", key=key, body=body)
        route = "–".join(code for code, *_ in STATIONS)
        print(
            f"published trains {', '.join(numbers)} on {self.date} ({route}),"
            f" {seats} second-class seats each; {done}"
        )
        return len(numbers)

    def start(self, user: RushUser) -> Any:
        with user.client.get(
            "/v1/passengers", headers=user.auth, name="/v1/passengers", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"passengers {resp.status_code}")
                return None
            holder = next(p["id"] for p in resp.json()["passengers"] if p["is_holder"])
        last = len(STATIONS) - 1
        if random.random() < END_TO_END_SHARE:
            a, b = 0, last
        else:
            a, b = sorted(random.sample(range(last + 1), 2))
        return Traveller(STATIONS[a][0], STATIONS[b][0], holder)

    def search(self, user: RushUser) -> list[str]:
        trip: Traveller = user.wants
        with user.client.get(
            "/v1/trains/search",
            params={"from": trip.origin, "to": trip.destination, "date": self.date.isoformat()},
            name="search /v1/trains/search",
            catch_response=True,
        ) as resp:
            trains = resp.json().get("trains", []) if resp.status_code == 200 else []
        return [
            t["run_id"]
            for t in trains
            if t.get("on_sale")
            and t.get("number") in self.numbers
            and any(c["class"] == "second" and c["remaining"] > 0 for c in t.get("classes", []))
        ]

    def hold(self, user: RushUser, choice: str, key: str) -> Any:
        trip: Traveller = user.wants
        return user.post(
            "/v1/orders",
            "/v1/orders",
            {**user.auth, "Idempotency-Key": key},
            {
                "run_id": choice,
                "from": trip.origin,
                "to": trip.destination,
                "seat_class": "second",
                "passenger_ids": [trip.passenger_id],
            },
        )

    def confirm_path(self, hold_id: str) -> str:
        return f"/v1/orders/{hold_id}/pay"

    def cancel_path(self, hold_id: str) -> str:
        return f"/v1/orders/{hold_id}/refund"

    def abandon_path(self, hold_id: str) -> str:
        return f"/v1/orders/{hold_id}/cancel"


PRODUCTS: dict[str, type[SeatProduct] | type[SlotProduct]] = {
    "seats": SeatProduct,
    "slots": SlotProduct,
}
# --units and --capacity when not given, per product.
DEFAULTS = {"seats": (3, 100), "slots": (20, 10)}


def _options(parser: Any) -> None:
    parser.add_argument("--product", choices=sorted(PRODUCTS), default="seats")
    parser.add_argument("--provider", default="pumch", help="slots: provider id")
    parser.add_argument(
        "--units", type=int, default=None, help="seats: trains (3); slots: resources (20)"
    )
    parser.add_argument(
        "--capacity", type=int, default=None, help="places per unit (seats 100, slots 10)"
    )
    parser.add_argument("--release-in", type=float, default=5.0, help="seconds until opening")
    parser.add_argument("--days-ahead", type=int, default=14, help="seats: clamped to 1..13")
    parser.add_argument("--searches-per-try", type=int, default=10)
    parser.add_argument("--abandon-share", type=float, default=0.05)
    parser.add_argument("--return-share", type=float, default=0.02)
    parser.add_argument("--staff-key", default="", help="default: operator key of data dir")
    parser.add_argument("--data-dir", default="", help="the service's data folder")
    parser.add_argument("--key-prefix", default="", help="the service's Redis key prefix")
    parser.add_argument("--skip-invariants", action="store_true")


def _publish(environment: Any, **_kw: Any) -> None:
    o = environment.parsed_options
    units, capacity = DEFAULTS[o.product]
    o.units = units if o.units is None else o.units
    o.capacity = capacity if o.capacity is None else o.capacity
    product: Product = PRODUCTS[o.product](o)
    STATE["product"] = product
    if isinstance(environment.runner, WorkerRunner):
        return  # the master publishes; users find the inventory by searching
    key = o.staff_key or service_keys(data_dir(o)).get("operator_key", "")
    count = product.publish(environment.host, key)
    if isinstance(product, SeatProduct):
        o.rush_trains = sorted(product.numbers)  # sent to workers with the options
    print(f"published {count} {product.unit} x {o.capacity} places, opening in {o.release_in:g} s")


class RushUser(Citizen):
    tally = TALLY
    wait_time = between(0.05, 0.5)  # impatient: refresh, refresh, refresh

    def on_start(self) -> None:
        if not self.register():
            return
        self.product: Product = STATE["product"]
        self.wants: Any = self.product.start(self)
        if self.wants is None:
            self.stop()
            return
        self.bought: str | None = None
        self.will_return = False
        self.tries = itertools.count()
        self.seen: list[str] = []
        self.searches = 0
        self.waited = False  # searched before the opening: tries at once when it opens

    @task
    def rush(self) -> None:
        o = self.environment.parsed_options
        if self.bought:
            # A returner gives the ticket back a few actions after buying it.
            if self.will_return and random.random() < 0.2:
                resp = self.post(
                    self.product.cancel_path(self.bought),
                    self.product.cancel_path("[id]"),
                    self.auth,
                )
                TALLY.add(f"returned {resp.status_code if resp is not None else 'none'}")
                self.bought = None  # and back into the crowd
            return
        self.seen = self.product.search(self)
        self.searches += 1
        if time.time() < self.product.opens_at:
            self.waited = True
            TALLY.add("searched: before opening")
            return
        if not self.seen:
            TALLY.add("searched: nothing left")
            return
        if self.searches % o.searches_per_try and not self.waited:
            return
        self.waited = False
        held = self.product.hold(
            self, random.choice(self.seen), f"rush-{id(self):x}-{next(self.tries)}"
        )
        held_ok = held is not None and held.status_code in (200, 201)
        if held_ok and random.random() < o.abandon_share:
            # Walks away from the payment page; cancelling puts the places back on sale.
            resp = self.post(
                self.product.abandon_path(held.json()["id"]),
                self.product.abandon_path("[id]"),
                self.auth,
            )
            TALLY.add(f"abandoned {resp.status_code if resp is not None else 'none'}")
            return
        self.bought = self.pay_for(held, self.product.confirm_path)
        if self.bought:
            self.will_return = random.random() < o.return_share


install_hooks("spring festival rush", TALLY, options=_options, publish=_publish)
