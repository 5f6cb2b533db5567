"""Train seats in the rebuild and the reconciliation (issue 4; see docs/durability.md).

The seat part of ``rebuild_inventory``: what Redis must hold for train seats follows from
the ``tickets`` table alone (one row per passenger of a hold, written before the citizen
heard "held" or "paid", and from every outbox event by the persister).

Always:
- Only runs whose map went to Redis once (``train_runs.seats_published_at``) or that have
  tickets, and that still matter (service date from two days ago on: overnight trains),
  are rebuilt, and marked published; other runs are published lazily, empty, as before
  (they have no ticket).
- A seat's pattern is the union of the segments of its held and confirmed tickets (a
  passenger refunded alone gave their seat back). Two live tickets on one seat-segment in
  Postgres cannot happen; if it did, the rebuild reports it (``oversold_seats``) and the
  seat stays sold, never sold a third time.
- A hold record comes back with every field the scripts read: a retry of the request that
  made it is a replay, a payment confirms it while its deadline lasts, and overdue holds
  are expired by the sweeper as usual (with the 改签 decision at the old ticket first).
  The client's seat-position wish is not kept in Postgres: the restored idempotency
  fingerprint assumes no wish, so only a retried *engine* call with a wish would be
  refused as a reused key (the order API answers retries from the hold record).
- Ended holds come back only while their record would still be kept (``keep_ms`` after
  they ended): they answer retries of cancels and holds.
- Seats the waitlist holds back after a cancel (cooling pieces, ``seat_free``) exist only
  in Redis. The rebuild frees them (Postgres has no live ticket on them; pieces carry the
  epoch they were freed under, so the waitlist drops them after a rebuild); the
  reconciliation counts the current epoch's pieces as sold.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from inventory import hold_record
from inventory.seat_engine import RestoredSeatHold
from inventory.seat_model import hold_fingerprint, ref_from_tail, seat_map
from inventory.waitlist_keys import WaitlistKeys
from reservation.domain.clock import CHINA, from_ms, to_ms
from reservation.domain.trains import TrainRun
from reservation.services import Services
from reservation.store import inventory_state as store
from reservation.store import timetable
from reservation.workflows.rebuild_inventory import (
    Difference,
    RebuildReport,
    Snapshot,
    _hgetall_many,
    _id_after,
    _scan,
    index_differences,
)
from reservation.workflows.train_inventory import seat_maps, trains_by_number

# Overnight runs board up to two days after their service date (as search assumes).
KEEP_RUN_DAYS = 2
LIVE = ("held", "confirmed")


@dataclass
class Unit:
    run_id: str
    seat_class: str
    nseg: int
    tails: list[str]  # ordinal order
    patterns: list[str]  # per ordinal (index = position in tails)

    def records(self) -> list[str]:
        return [f"{p}|{t}" for p, t in zip(self.patterns, self.tails, strict=True)]


@dataclass
class SeatSnapshot(Snapshot):
    runs: list[TrainRun] = field(default_factory=list)
    units: dict[tuple[str, str], Unit] = field(default_factory=dict)
    holds: dict[str, RestoredSeatHold] = field(default_factory=dict)
    # Problems in Postgres itself (a seat-segment sold twice, a ticket on an unknown seat).
    problems: list[Difference] = field(default_factory=list)


def _ms(value: dt.datetime | None) -> int | None:
    return to_ms(value) if value is not None else None


def _hold_state(states: list[str]) -> str:
    """A hold's state from its tickets' (a passenger refunded alone leaves the rest)."""
    if "held" in states:
        return "held"
    if "confirmed" in states:
        return "confirmed"
    for final in ("changed", "expired"):
        if final in states:
            return final
    return "cancelled"  # cancelled, or refunded after its cancellation


def _occupy(pattern: str, a: int, b: int) -> tuple[str, bool]:
    """The pattern with [a, b) sold; False if some of it was sold already."""
    clash = "1" in pattern[a:b]
    return pattern[:a] + "1" * (b - a) + pattern[b:], not clash


class SeatPart:
    name = "seats"

    async def read(self, services: Services, now_ms: int) -> Snapshot:
        first_day = from_ms(now_ms).astimezone(CHINA).date() - dt.timedelta(days=KEEP_RUN_DAYS)
        async with services.pool.acquire() as conn:
            rows = await store.published_runs_since(conn, first_day)
            tickets = await store.tickets_of_runs(conn, [r["id"] for r in rows])
        snap = SeatSnapshot(now_ms, [], [])
        trains = await trains_by_number(services, {r["train_number"] for r in rows})
        where: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
        for row in rows:
            train = trains.get(row["train_number"])
            if train is None:  # pragma: no cover - runs reference their train
                continue
            snap.runs.append(TrainRun(row["id"], train, row["service_date"]))
            for cls, specs in (await seat_maps(services, train.composition_id)).items():
                tails = seat_map(cls, specs)
                unit = Unit(row["id"], cls, train.nseg, tails, ["0" * train.nseg] * len(tails))
                snap.units[(row["id"], cls)] = unit
                refs = (ref_from_tail(t) for t in tails)
                where[(row["id"], cls)] = {(r.coach, r.seat): i for i, r in enumerate(refs)}
        by_hold: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in tickets:
            by_hold[t["hold_id"]].append(t)
        keep_ms = services.seats.keep_ms
        for hold_id, group in by_hold.items():
            first = group[0]
            key = (first["run_id"], first["seat_class"])
            found = snap.units.get(key)
            places = [t["passenger_no"] for t in group]
            if found is None or places != list(range(1, len(places) + 1)):
                snap.problems.append(
                    Difference("seat_ticket", hold_id, "-", f"unusable tickets of {key}")
                )
                continue
            unit = found
            ordinals = [where[key].get((t["coach"], t["seat"])) for t in group]
            if any(o is None for o in ordinals):
                snap.problems.append(
                    Difference("seat_ticket", hold_id, "-", "a ticket on a seat not in the map")
                )
                continue
            states = [t["state"] for t in group]
            state = _hold_state(states)
            a, b = int(first["seg_from"]), int(first["seg_to"])
            pax = tuple(t["person_hmac"] for t in group)
            change_of = next((t["change_of"] for t in group if t["change_of"]), "") or ""
            changed_to = next((t["changed_to"] for t in group if t["changed_to"]), "") or ""
            deadline = next((t["deadline"] for t in group if t["deadline"] is not None), None)
            confirmed = [t["confirmed_at"] for t in group if t["confirmed_at"] is not None]
            ended = [t["ended_at"] for t in group if t["ended_at"] is not None]
            gone: tuple[tuple[int, int], ...] = ()
            if state == "confirmed":
                gone = tuple(
                    (t["passenger_no"], _ms(t["ended_at"]) or now_ms)
                    for t in group
                    if t["state"] not in LIVE
                )
            ended_ms = to_ms(max(ended)) if ended and state not in LIVE else None
            expire_at = ended_ms + keep_ms if ended_ms is not None else None
            if state not in LIVE and (expire_at is None or expire_at <= now_ms):
                continue  # its record would be gone by now: nothing to restore
            hold = RestoredSeatHold(
                hold_id=hold_id,
                run_id=key[0],
                seat_class=key[1],
                account_id=first["account_id"],
                segments=(a, b),
                tails=tuple(unit.tails[o] for o in ordinals if o is not None),
                passengers=pax,
                state=state,
                deadline_ms=_ms(deadline) or 0,
                fingerprint=hold_fingerprint(key[0], key[1], a, b, pax, "", change_of),
                confirmed_ms=to_ms(min(confirmed)) if confirmed else None,
                ended_ms=ended_ms,
                change_of=change_of,
                changed_to=changed_to,
                gone=gone,
                expire_at_ms=expire_at,
            )
            snap.holds[hold_id] = hold
            for place in hold.live_places:
                o = ordinals[place - 1]
                assert o is not None
                unit.patterns[o], fresh = _occupy(unit.patterns[o], a, b)
                if not fresh:
                    snap.problems.append(
                        Difference(
                            "seat_sold_twice",
                            f"{key[0]}/{key[1]} seat {unit.tails[o]}",
                            "-",
                            f"hold {hold_id} overlaps another live ticket",
                        )
                    )
        return snap

    @staticmethod
    def _snap(snapshot: Snapshot) -> SeatSnapshot:
        assert isinstance(snapshot, SeatSnapshot)
        return snapshot

    def live_account_holds(self, snapshot: Snapshot) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for h in self._snap(snapshot).holds.values():
            # A 改签's new hold is not counted against the cap (change_ticket skips it).
            if h.state == "held" and not h.change_of and h.deadline_ms > snapshot.now_ms:
                out[h.account_id][h.hold_id] = h.deadline_ms
        return out

    async def _seat_holds_in_redis(
        self, services: Services, runs: set[str]
    ) -> dict[str, dict[str, str]]:
        hold_keys = await _scan(services, "hold")
        found = [hold_record.record_fields(h) for h in await _hgetall_many(services, hold_keys)]
        return {
            _id_after(k, "hold"): h
            for k, h in zip(hold_keys, found, strict=True)
            if h.get("kind") == "seat" and h.get("run") in runs
        }

    async def restore(
        self, services: Services, snapshot: Snapshot, marker: str, report: RebuildReport
    ) -> None:
        snap = self._snap(snapshot)
        engine = services.seats
        runs = {r.run_id for r in snap.runs}
        # Seat holds Redis has that Postgres does not (lost with the data, or past their
        # record's life): dropped with their deadline.
        for hold_id in (await self._seat_holds_in_redis(services, runs)).keys() - snap.holds:
            shard = engine.keys.hold_shard(hold_id)
            async with services.redis.pipeline(transaction=False) as pipe:
                pipe.delete(engine.keys.hold(hold_id))  # unlink: async on a cluster
                pipe.zrem(services.keys.hold_deadlines(shard), hold_id)
                await pipe.execute()
            report.removed_seat_holds += 1
        for unit in snap.units.values():
            await engine.restore_unit(
                unit.run_id, unit.seat_class, unit.nseg, unit.records(), marker
            )
        report.seat_units += len(snap.units)
        by_run: dict[str, list[RestoredSeatHold]] = defaultdict(list)
        for h in snap.holds.values():
            by_run[h.run_id].append(h)
            if h.state == "held":
                report.seat_holds_live += 1
            elif h.state == "confirmed":
                report.seat_confirmed += 1
            else:
                report.seat_ended += 1
        for run_id in sorted(runs):
            await engine.restore_holds(run_id, by_run.get(run_id, []), marker)
        async with services.pool.acquire() as conn:
            # Its map is in Redis now: a lazy load checks it, never publishes it empty.
            await timetable.mark_published(conn, sorted(runs))
        report.oversold_seats += [p.subject for p in snap.problems if p.kind == "seat_sold_twice"]

    async def compare(self, services: Services, snapshot: Snapshot) -> list[Difference]:
        snap = self._snap(snapshot)
        engine = services.seats
        diffs: list[Difference] = list(snap.problems)
        cooling = await self._cooling_pieces(services, snap)
        for unit in snap.units.values():
            u = engine.unit(unit.run_id, unit.seat_class)
            subject = f"{unit.run_id}/{unit.seat_class}"
            live = await services.redis.hgetall(u.seats)
            if not live:
                diffs.append(Difference("missing_seat_map", subject, "nothing", "a seat map"))
                continue
            patterns = list(unit.patterns)
            for i, tail in enumerate(unit.tails):
                for a, b in cooling.get((unit.run_id, unit.seat_class, tail), []):
                    patterns[i] = _occupy(patterns[i], a, b)[0]
            want = {t[:5]: f"{p}|{t}" for p, t in zip(patterns, unit.tails, strict=True)}
            for ordinal in sorted(set(want) | set(live)):
                got, expect = live.get(ordinal), want.get(ordinal)
                if got != expect:
                    diffs.append(
                        Difference(
                            "seat_pattern",
                            f"{subject} seat {ordinal}",
                            got or "nothing",
                            expect or "no such seat",
                        )
                    )
            for name in await engine.audit(unit.run_id, unit.seat_class):
                diffs.append(Difference("seat_index", f"{subject} {name}", "inconsistent", "-"))
        runs = {r.run_id for r in snap.runs}
        redis_holds = await self._seat_holds_in_redis(services, runs)
        for hold_id in sorted(redis_holds.keys() - snap.holds.keys()):
            diffs.append(
                Difference(
                    "extra_seat_hold",
                    hold_id,
                    f"state={redis_holds[hold_id].get('state')}",
                    "no tickets",
                )
            )
        checked: list[RestoredSeatHold] = []
        for hold_id, want_hold in sorted(snap.holds.items()):
            got_hold = redis_holds.get(hold_id)
            if got_hold is None:
                # An ended hold's record may have reached the end of its life in Redis.
                if want_hold.live:
                    diffs.append(
                        Difference(
                            "missing_seat_hold", hold_id, "nothing", f"state={want_hold.state}"
                        )
                    )
                continue
            names = ["state", "acct", "run", "cls", "a", "b", "seats", "pax", "change_of"]
            if want_hold.state == "held":
                names.append("deadline")
            expected = want_hold.fields()
            for name in names:
                if got_hold.get(name, "") != expected.get(name, ""):
                    kind = "seat_hold_state" if name == "state" else "seat_hold_field"
                    diffs.append(
                        Difference(
                            kind,
                            f"{hold_id}.{name}" if name != "state" else hold_id,
                            got_hold.get(name, "-"),
                            expected.get(name, "-"),
                        )
                    )
            checked.append(want_hold)
        # The deadline index holds exactly the held holds, at their deadline.
        async with services.redis.pipeline(transaction=False) as pipe:
            for h in checked:
                pipe.zscore(
                    services.keys.hold_deadlines(engine.keys.hold_shard(h.hold_id)), h.hold_id
                )
            scores = await pipe.execute()
        for h, score in zip(checked, scores, strict=True):
            got = int(score) if score is not None else None
            if got != h.indexed_deadline:
                diffs.append(
                    Difference("seat_deadline_index", h.hold_id, str(got), str(h.indexed_deadline))
                )
        diffs += await self._compare_passengers(services, snap)
        return diffs

    async def _cooling_pieces(
        self, services: Services, snap: SeatSnapshot
    ) -> dict[tuple[str, str, str], list[tuple[int, int]]]:
        """Seats the waitlist holds back (``seat_free``: cooling pieces, still sold in the
        patterns, in no hold and not in Postgres) under the current epoch: (run, class,
        tail) -> their segments. Pieces of an older epoch are stale: the rebuild freed
        their seats and the waitlist drops them."""
        wl = WaitlistKeys(services.keys)
        shards = sorted({services.seats.unit(r.run_id, "").shard for r in snap.runs})
        async with services.redis.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.get(services.keys.epoch(shard))
                pipe.hgetall(wl.pieces(shard))
            replies = await pipe.execute()
        out: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
        for marker, pieces in zip(replies[::2], replies[1::2], strict=True):
            for detail in pieces.values():
                parts = detail.split("|", 9)
                if len(parts) == 10 and parts[0] == "seat" and parts[8] == (marker or ""):
                    out[(parts[1], parts[2], parts[9])].append((int(parts[3]), int(parts[4])))
        return out

    async def _compare_passengers(self, services: Services, snap: SeatSnapshot) -> list[Difference]:
        """One live ticket per person per run: the run's passenger index."""
        want: dict[str, dict[str, str]] = {r.run_id: {} for r in snap.runs}
        for h in snap.holds.values():
            for person in h.live_passengers:
                want[h.run_id][person] = h.hold_id
        names = sorted(want)
        keys = [services.seats.unit(run_id, "").pax for run_id in names]
        diffs: list[Difference] = []
        for run_id, live in zip(names, await _hgetall_many(services, keys), strict=True):
            diffs += index_differences("seat_passenger", run_id, live, want[run_id])
        return diffs
