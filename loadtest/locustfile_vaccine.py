"""A vaccine campaign opening: a site puts several days of sessions on sale at once.

Run against a running service (see docs/load-testing.md)::

    .venv/bin/locust -f loadtest/locustfile_vaccine.py --headless -u 300 -r 100 -t 60s \\
        --host http://127.0.0.1:8080

At start (on the master or the only process) the site's staff publish, through the
vaccine staff API (``POST /v1/providers/{site}/vaccine/sessions``), for site
``--provider`` (default ``bj-dongcheng-cdc``, the demo site), ``--days`` days of
``--sessions`` sessions with ``--capacity`` places each of the product of campaign
``--campaign`` (default ``flu-season``: one dose, ages 3+, which every registered citizen,
born 1950-1999, meets), all released ``--release-in`` seconds later (the sessions'
``release_at``). The days are the first ones from ``--first-day-ahead`` days out on which
the site has no session of that product yet, so the profile can run again on one service.
The key is the site's staff key from ``<data dir>/demo-credentials.json`` (else the
operator key from ``secrets.json``), or ``--staff-key``.

Each user registers, looks up its own passenger entry (``is_holder``) and its eligibility
for the campaign, prefers one day at random and falls back to the others, lists the site's
sessions with places (``GET /v1/vaccine/sites/{site}/slots``), books one
(``POST /v1/vaccine/bookings``: 409 ``not_released`` until the release time, ``sold_out``
when someone was faster) and confirms it (``POST /v1/vaccine/bookings/{id}/confirm``); a
share (``--cancel-share``) later cancel (``POST /v1/vaccine/bookings/{id}/cancel``) and
book again, so returned places are resold during the rush. 429/503 are retried after
``Retry-After`` with the same Idempotency-Key. At the end: a summary and the invariant
checker (exit code 1 if an invariant fails; ``--skip-invariants`` to skip).

A campaign whose product books dose 1 only together with dose 2 (``covid-*``) is refused
at start: users here book one dose at a time (``hepb-adults`` works too: dose by dose).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from locust import between, task
from locust.runners import WorkerRunner

from loadtest.locust_citizen import Citizen
from loadtest.locust_hooks import data_dir
from loadtest.locust_hooks import install as install_hooks
from loadtest.scenarios import Tally, http_json, service_keys
from reservation.domain.clock import CHINA

TALLY = Tally()
CAMPAIGN: dict[str, Any] = {"days": []}
# Reasons of 409 answers, as the summary names them.
REFUSALS = {
    "sold_out": "sold out",
    "not_released": "not released yet",
    "person_limit": "already booked that day",
    "hold_cap": "too many unpaid holds",
}


def _options(parser: Any) -> None:
    parser.add_argument("--provider", default="bj-dongcheng-cdc", help="vaccination site id")
    parser.add_argument("--campaign", default="flu-season", help="campaign id (catalogue)")
    parser.add_argument("--sessions", type=int, default=8, help="sessions per day")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=10, help="places per session")
    parser.add_argument("--release-in", type=float, default=5.0, help="seconds until opening")
    parser.add_argument("--first-day-ahead", type=int, default=12)
    parser.add_argument("--cancel-share", type=float, default=0.05)
    parser.add_argument("--staff-key", default="", help="default: site's demo staff key")
    parser.add_argument("--data-dir", default="", help="the service's data folder")
    parser.add_argument("--key-prefix", default="", help="the service's Redis key prefix")
    parser.add_argument("--skip-invariants", action="store_true")


def _product_of(host: str, campaign_id: str) -> str:
    catalogue = http_json(f"{host}/v1/vaccine/catalogue")
    campaigns = {c["id"]: c for c in catalogue["campaigns"]}
    if campaign_id not in campaigns:
        raise RuntimeError(f"no campaign {campaign_id!r}; the catalogue has {sorted(campaigns)}")
    campaign = campaigns[campaign_id]
    product = next(p for p in catalogue["products"] if p["code"] == campaign["product"])
    if product["book_series"]:
        # Dose 1 alone would be refused (series_required): this profile books one slot.
        raise RuntimeError(f"{campaign_id}: {product['code']} is booked as a series only")
    if campaign["priority_groups"] or campaign["min_age"] > 26 or campaign["max_age"] < 76:
        print(f"{campaign_id}: some registered citizens (born 1950-1999) are not eligible")
    return str(product["code"])


def _free_days(host: str, site: str, product: str, first: int, wanted: int) -> list[str]:
    """The first ``wanted`` days from ``first`` days out with no session of ``product``
    at ``site``: sessions may not overlap published ones, and a rerun starts afresh."""
    today = dt.datetime.now(CHINA).date()
    days: list[str] = []
    for ahead in range(first, 390):
        day = (today + dt.timedelta(days=ahead)).isoformat()
        query = urllib.parse.urlencode({"product": product, "day": day})
        if not http_json(f"{host}/v1/vaccine/sites/{site}/slots?{query}")["slots"]:
            days.append(day)
            if len(days) == wanted:
                break
    return days


def _rows(o: Any, product: str, days: list[str]) -> list[list[dict[str, Any]]]:
    """One batch of session rows per day: back-to-back sessions from 08:00."""
    minutes = max(1, min(30, 900 // max(1, o.sessions)))
    release = dt.datetime.now(CHINA) + dt.timedelta(seconds=o.release_in)
    batches = []
    for day in days:
        rows = []
        for k in range(o.sessions):
            start = 8 * 60 + minutes * k  # minutes after midnight (local time)
            end = start + minutes
            rows.append(
                {
                    "product": product,
                    "day": day,
                    "start": f"{start // 60:02d}:{start % 60:02d}",
                    "end": f"{end // 60:02d}:{end % 60:02d}",
                    "capacity": o.capacity,
                    "release_at": release.isoformat(),
                }
            )
        batches.append(rows)
    return batches


def _publish(environment: Any, **_kw: Any) -> None:
    o = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner):
        # The master's plan arrives with its options in the spawn message.
        CAMPAIGN.update(getattr(o, "vaccine_plan", None) or {})
        return
    host = environment.host.rstrip("/")
    product = _product_of(host, o.campaign)
    days = _free_days(host, o.provider, product, o.first_day_ahead, o.days)
    keys = service_keys(data_dir(o))
    key = (
        o.staff_key
        or keys.get(f"vaccine_staff_key (provider {o.provider})")
        or keys.get("operator_key", "")
    )
    total = 0
    for rows in _rows(o, product, days):
        published = http_json(
            f"{host}/v1/providers/{o.provider}/vaccine/sessions", key=key, body={"rows": rows}
        )
        total += len(published["slots"])
    CAMPAIGN.update(days=days, site=o.provider, campaign=o.campaign, product=product)
    o.vaccine_plan = dict(CAMPAIGN)  # sent to workers with the options
    print(
        f"published {total} {product} sessions x {o.capacity} places on {', '.join(days)}"
        f" at {o.provider}, opening in {o.release_in:g} s"
    )


def _refusal(resp: Any) -> str:
    """What a refused booking answer means, for the summary."""
    if resp is None:
        return "book gave up"
    try:
        body = resp.json()
    except ValueError:
        body = {}
    code = body.get("code", resp.status_code)
    if code == "not_eligible":
        return f"not eligible ({(body.get('fields') or {}).get('reason')})"
    return REFUSALS.get(code, f"book {code}")


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
        if not days:
            TALLY.add("no campaign days")  # a worker without the master's plan
            self.stop()
            return
        self.passenger_id = self._holder()
        if self.passenger_id is None or not self._eligible():
            self.stop()

    def _holder(self) -> str | None:
        with self.client.get(
            "/v1/passengers", headers=self.auth, name="/v1/passengers", catch_response=True
        ) as resp:
            people = resp.json().get("passengers", []) if resp.status_code == 200 else []
        holder = next((p["id"] for p in people if p.get("is_holder")), None)
        if holder is None:
            TALLY.add("no holder passenger")
        return holder

    def _eligible(self) -> bool:
        """Asked once, as the booking page does before showing the sessions."""
        with self.client.get(
            "/v1/vaccine/eligibility",
            params={
                "campaign_id": CAMPAIGN["campaign"],
                "day": self.days[0],
                "passenger_id": self.passenger_id,
            },
            headers=self.auth,
            name="/v1/vaccine/eligibility",
            catch_response=True,
        ) as resp:
            answer = resp.json() if resp.status_code == 200 else {}
        if not answer.get("eligible"):
            TALLY.add(f"not eligible ({answer.get('reason') or resp.status_code})")
            return False
        return True

    def _sessions_with_places(self) -> list[str]:
        for day in self.days:
            with self.client.get(
                f"/v1/vaccine/sites/{CAMPAIGN['site']}/slots",
                params={"product": CAMPAIGN["product"], "day": day},
                name="/v1/vaccine/sites/[site]/slots?day",
                catch_response=True,
            ) as resp:
                slots = resp.json().get("slots", []) if resp.status_code == 200 else []
            found = [s["id"] for s in slots if (s.get("available") or 0) > 0]
            if found:
                return found
        return []

    def _cancel(self, series_id: str) -> None:
        resp = self.post(
            f"/v1/vaccine/bookings/{series_id}/cancel",
            "/v1/vaccine/bookings/[id]/cancel",
            self.auth,
        )
        if resp is not None and resp.status_code == 200:
            TALLY.add("cancelled")
        else:
            TALLY.add(f"cancel {resp.status_code if resp is not None else 'gave up'}")
        self.booked = None
        random.shuffle(self.days)

    def _confirm(self, series_id: str) -> None:
        resp = self.post(
            f"/v1/vaccine/bookings/{series_id}/confirm",
            "/v1/vaccine/bookings/[id]/confirm",
            self.auth,
        )
        if resp is not None and resp.status_code == 200 and resp.json()["state"] == "confirmed":
            TALLY.add("confirmed")
            self.booked = series_id
            return
        code = resp.json().get("code", resp.status_code) if resp is not None else "gave up"
        TALLY.add(f"confirm {code}")

    @task
    def campaign(self) -> None:
        if self.booked:
            if random.random() < self.environment.parsed_options.cancel_share:
                self._cancel(self.booked)
            else:
                self.client.get(
                    "/v1/vaccine/appointments", headers=self.auth, name="/v1/vaccine/appointments"
                )
            return
        sessions = self._sessions_with_places()
        if not sessions:
            TALLY.add("saw nothing left")
            return
        held = self.post(
            "/v1/vaccine/bookings",
            "/v1/vaccine/bookings",
            {**self.auth, "Idempotency-Key": f"vac-{id(self):x}-{next(self.tries)}"},
            {
                "campaign_id": CAMPAIGN["campaign"],
                "passenger_id": self.passenger_id,
                "slot_ids": [random.choice(sessions)],
            },
        )
        if held is None or held.status_code not in (200, 201):
            TALLY.add(_refusal(held))
            return
        self._confirm(held.json()["id"])


install_hooks("vaccine campaign opening", TALLY, options=_options, publish=_publish)
