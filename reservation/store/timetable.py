"""Timetables in Postgres: stations, lines, compositions, trains, calendars and runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from reservation.domain.trains import (
    CoachSection,
    Composition,
    ServiceCalendar,
    Station,
    Stop,
    Train,
)

# --- stations and lines ------------------------------------------------------------------


def _station(row: Any) -> Station:
    return Station(row["code"], row["name_zh"], row["name_en"], row["city"])


async def upsert_stations(conn: Any, stations: Sequence[Station]) -> None:
    await conn.executemany(
        """INSERT INTO stations (code, name_zh, name_en, city) VALUES ($1, $2, $3, $4)
           ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh,
               name_en = EXCLUDED.name_en, city = EXCLUDED.city""",
        [(s.code, s.name_zh, s.name_en, s.city) for s in stations],
    )


async def upsert_lines(conn: Any, lines: Sequence[tuple[str, str]]) -> None:
    await conn.executemany(
        """INSERT INTO lines (code, name) VALUES ($1, $2)
           ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name""",
        lines,
    )


async def existing_codes(conn: Any, table: str, codes: Iterable[str]) -> set[str]:
    """Which of ``codes`` exist in stations (code), lines (code) or compositions (id)."""
    column = {"stations": "code", "lines": "code", "compositions": "id"}[table]
    rows = await conn.fetch(
        f"SELECT {column} AS k FROM {table} WHERE {column} = ANY($1::text[])", list(codes)
    )
    return {r["k"] for r in rows}


async def find_station(conn: Any, ref: str) -> Station | None:
    """A station by code (any case) or by its exact Chinese or English name."""
    row = await conn.fetchrow(
        """SELECT * FROM stations
           WHERE code = upper($1) OR name_zh = $1 OR lower(name_en) = lower($1)
           ORDER BY code = upper($1) DESC LIMIT 1""",
        ref,
    )
    return _station(row) if row is not None else None


async def stations_by_code(conn: Any, codes: Iterable[str]) -> dict[str, Station]:
    rows = await conn.fetch("SELECT * FROM stations WHERE code = ANY($1::text[])", list(codes))
    return {r["code"]: _station(r) for r in rows}


async def search_stations(conn: Any, prefix: str, limit: int = 20) -> list[Station]:
    rows = await conn.fetch(
        """SELECT * FROM stations
           WHERE $1 = '' OR lower(name_en) LIKE $2 OR name_zh LIKE $3 OR code = upper($1)
           ORDER BY name_en LIMIT $4""",
        prefix,
        _like_prefix(prefix.lower()),
        _like_prefix(prefix),
        limit,
    )
    return [_station(r) for r in rows]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- compositions ------------------------------------------------------------------------


async def insert_composition(conn: Any, composition: Composition, description: str) -> None:
    await conn.execute(
        "INSERT INTO compositions (id, description) VALUES ($1, $2)",
        composition.id,
        description,
    )
    await conn.executemany(
        """INSERT INTO coach_sections (composition_id, coach, seat_class, layout, first_row, rows)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [
            (composition.id, s.coach, s.seat_class, s.layout, s.first_row, s.rows)
            for s in composition.sections
        ],
    )


async def load_compositions(conn: Any, ids: Iterable[str]) -> dict[str, Composition]:
    rows = await conn.fetch(
        """SELECT * FROM coach_sections WHERE composition_id = ANY($1::text[])
           ORDER BY composition_id, coach, first_row""",
        list(ids),
    )
    sections: dict[str, list[CoachSection]] = {}
    for r in rows:
        sections.setdefault(r["composition_id"], []).append(
            CoachSection(r["coach"], r["seat_class"], r["layout"], r["rows"], r["first_row"])
        )
    return {cid: Composition(cid, tuple(s)) for cid, s in sections.items()}


# --- trains ------------------------------------------------------------------------------


async def insert_train(conn: Any, train: Train, calendar: ServiceCalendar) -> None:
    await conn.execute(
        """INSERT INTO trains (number, kind, line_code, composition_id, departs_min)
           VALUES ($1, $2, $3, $4, $5)""",
        train.number,
        train.kind,
        train.line,
        train.composition_id,
        train.departs_min,
    )
    await conn.executemany(
        """INSERT INTO train_stops (train_number, seq, station_code, arrive_min, depart_min, km)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [
            (train.number, i, s.station, s.arrive_min, s.depart_min, s.km)
            for i, s in enumerate(train.stops)
        ],
    )
    await upsert_calendar(conn, train.number, calendar)


async def upsert_calendar(conn: Any, number: str, calendar: ServiceCalendar) -> None:
    await conn.execute(
        """INSERT INTO train_calendar (train_number, valid_from, valid_to, weekdays)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (train_number) DO UPDATE SET valid_from = EXCLUDED.valid_from,
               valid_to = EXCLUDED.valid_to, weekdays = EXCLUDED.weekdays""",
        number,
        calendar.valid_from,
        calendar.valid_to,
        calendar.weekdays,
    )


async def load_trains(conn: Any, numbers: Iterable[str]) -> dict[str, Train]:
    wanted = list(numbers)
    heads = await conn.fetch("SELECT * FROM trains WHERE number = ANY($1::text[])", wanted)
    stops = await conn.fetch(
        """SELECT * FROM train_stops WHERE train_number = ANY($1::text[])
           ORDER BY train_number, seq""",
        wanted,
    )
    by_train: dict[str, list[Stop]] = {}
    for s in stops:
        by_train.setdefault(s["train_number"], []).append(
            Stop(s["station_code"], s["arrive_min"], s["depart_min"], s["km"])
        )
    return {
        h["number"]: Train(
            number=h["number"],
            kind=h["kind"],
            composition_id=h["composition_id"],
            departs_min=h["departs_min"],
            stops=tuple(by_train.get(h["number"], ())),
            line=h["line_code"],
        )
        for h in heads
    }


async def count_trains(conn: Any) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM trains")
    return count


# --- runs --------------------------------------------------------------------------------

MATERIALIZE_RUNS = """
INSERT INTO train_runs (id, train_number, service_date, departs_at)
SELECT t.number || '-' || to_char(d, 'YYYYMMDD'), t.number, d::date,
       -- local (UTC+8) departure as an instant, without needing a time zone database
       (d::date + make_interval(mins => t.departs_min - 480)) AT TIME ZONE 'UTC'
FROM trains t
JOIN train_calendar c ON c.train_number = t.number
CROSS JOIN generate_series($1::date, $2::date, interval '1 day') AS d
WHERE d::date BETWEEN c.valid_from AND c.valid_to
  AND strpos(c.weekdays, extract(isodow FROM d)::int::text) > 0
  AND ($3::text[] IS NULL OR t.number = ANY($3::text[]))
ON CONFLICT (train_number, service_date) DO NOTHING
"""


async def materialize_runs(
    conn: Any, first: dt.date, last: dt.date, numbers: Sequence[str] | None = None
) -> int:
    """Create the runs the calendars call for on ``first..last``; returns how many were new."""
    status: str = await conn.execute(
        MATERIALIZE_RUNS, first, last, list(numbers) if numbers is not None else None
    )
    return int(status.split()[-1])


async def runs_between(
    conn: Any, origin: str, destination: str, boarding_date: dt.date
) -> list[dict[str, Any]]:
    """Runs calling at ``origin`` and later at ``destination`` that leave ``origin`` on
    ``boarding_date`` (China time); an overnight run may belong to an earlier service date."""
    rows = await conn.fetch(
        """SELECT r.id, r.train_number, r.service_date, r.status
           FROM train_stops a
           JOIN train_stops b ON b.train_number = a.train_number AND b.seq > a.seq
           JOIN trains t ON t.number = a.train_number
           JOIN train_runs r ON r.train_number = a.train_number
            AND r.service_date = $3::date - ((t.departs_min + a.depart_min) / 1440)
           WHERE a.station_code = $1 AND b.station_code = $2""",
        origin,
        destination,
        boarding_date,
    )
    return [dict(r) for r in rows]


async def get_run(conn: Any, run_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, train_number, service_date, status, seats_published_at
           FROM train_runs WHERE id = $1""",
        run_id,
    )
    return dict(row) if row is not None else None


async def published_runs(conn: Any, run_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        """SELECT id FROM train_runs
           WHERE id = ANY($1::text[]) AND seats_published_at IS NOT NULL""",
        list(run_ids),
    )
    return {r["id"] for r in rows}


async def mark_published(conn: Any, run_ids: Sequence[str]) -> None:
    await conn.execute(
        """UPDATE train_runs SET seats_published_at = now()
           WHERE id = ANY($1::text[]) AND seats_published_at IS NULL""",
        list(run_ids),
    )
