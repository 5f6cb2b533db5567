"""Import a timetable (JSON or CSV, see docs/trains.md): all or nothing.

Always: the whole file is checked before anything is written, and every offending row is
reported at once (422 ``validation_failed``, ``fields.errors`` = [{row, field, message}]).
Only once: a train's stops and composition never change after its import, because sold
tickets and live seat maps are laid out on them. Importing the same train again is a no-op
(its calendar is updated); importing it with other stops or another composition is refused.
The same holds for compositions. Stations and lines may be renamed.

After the write, the runs the calendars call for within the sale horizon are created; later
dates are created when first searched (:mod:`reservation.workflows.train_inventory`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pydantic

from reservation.api.train_schemas import TimetableIn
from reservation.domain.clock import from_ms
from reservation.domain.trains import (
    CoachSection,
    Composition,
    ServiceCalendar,
    Station,
    Stop,
    Train,
    check_composition,
    check_train,
    offsets_from_clock,
    parse_clock,
)
from reservation.errors import Conflict, ValidationFailed
from reservation.services import Services
from reservation.store import timetable as store
from reservation.workflows.train_inventory import inventory

CSV_COLUMNS = (
    "train",
    "composition",
    "line",
    "valid_from",
    "valid_to",
    "weekdays",
    "station",
    "arrive",
    "depart",
    "km",
)
TRAIN_COLUMNS = ("composition", "line", "valid_from", "valid_to", "weekdays")


@dataclass(frozen=True, slots=True)
class RowError:
    """``row``: the index in its JSON section, or the CSV line number (header = 1)."""

    row: int
    field: str
    message: str
    section: str = "trains"

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "row": self.row,
            "field": self.field,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class TrainDraft:
    train: Train
    calendar: ServiceCalendar
    row: int  # where the train starts
    stop_rows: tuple[int, ...] | None = None  # CSV: the line of each stop

    def locate(self, field_name: str) -> tuple[int, str]:
        """A domain field path -> (row, field) as the operator's file has it."""
        if self.stop_rows is not None and field_name.startswith("stops["):
            index, _, rest = field_name[6:].partition("]")
            return self.stop_rows[int(index)], rest.lstrip(".") or "stop"
        return self.row, field_name


@dataclass
class Timetable:
    stations: list[Station] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    compositions: list[tuple[Composition, str]] = field(default_factory=list)
    trains: list[TrainDraft] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportResult:
    stations: int
    compositions_created: int
    trains_created: int
    trains_unchanged: int
    runs_created: int

    def to_dict(self) -> dict[str, int]:
        return {
            "stations": self.stations,
            "compositions_created": self.compositions_created,
            "trains_created": self.trains_created,
            "trains_unchanged": self.trains_unchanged,
            "runs_created": self.runs_created,
        }


def _refuse(errors: Sequence[RowError]) -> ValidationFailed:
    return ValidationFailed(
        "Nothing was imported: fix the listed rows.", errors=[e.to_dict() for e in errors]
    )


# --- parsing -----------------------------------------------------------------------------


def _train(
    number: str,
    kind: str | None,
    composition: str,
    line: str | None,
    stops: Sequence[tuple[str, str | None, str | None, int]],
) -> Train:
    """Clock times -> offsets; the first stop's departure is the origin departure."""
    clocks = [
        (parse_clock(a) if a else None, parse_clock(d) if d else None) for _, a, d, _ in stops
    ]
    departs = clocks[0][1] if clocks[0][1] is not None else 0
    offsets = offsets_from_clock(departs, clocks)
    return Train(
        number=number,
        kind=kind or number[0],
        composition_id=composition,
        departs_min=departs,
        stops=tuple(
            Stop(code, arr, dep, km)
            for (code, _, _, km), (arr, dep) in zip(stops, offsets, strict=True)
        ),
        line=line or None,
    )


def from_model(doc: TimetableIn) -> Timetable:
    return Timetable(
        stations=[Station(s.code, s.name_zh, s.name_en, s.city) for s in doc.stations],
        lines=[(ln.code, ln.name) for ln in doc.lines],
        compositions=[
            (
                Composition(
                    c.id,
                    tuple(
                        CoachSection(k.coach, k.seat_class, k.layout, k.rows, k.first_row)
                        for k in c.coaches
                    ),
                ),
                c.description,
            )
            for c in doc.compositions
        ],
        trains=[
            TrainDraft(
                _train(
                    t.number,
                    t.kind,
                    t.composition,
                    t.line,
                    [(s.station, s.arrive, s.depart, s.km) for s in t.stops],
                ),
                ServiceCalendar(t.calendar.valid_from, t.calendar.valid_to, t.calendar.weekdays),
                row=i,
            )
            for i, t in enumerate(doc.trains)
        ],
    )


def parse_json(data: Any) -> Timetable:
    """A decoded JSON document -> Timetable; 422 listing every structural error."""
    try:
        doc = TimetableIn.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = list(err["loc"])
            section = str(loc[0]) if loc else "body"
            row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            rest = ".".join(str(p) for p in loc[2:])
            errors.append(RowError(row, rest or section, err["msg"], section))
        raise _refuse(errors) from exc
    return from_model(doc)


# Postgres text cannot hold U+0000: a NUL reaching the import failed in the driver.
NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


def _nul_errors(data: Any, loc: tuple[str | int, ...] = ()) -> list[RowError]:
    """A RowError for every string (or object key) of a decoded document holding a NUL."""
    found: list[RowError] = []
    if isinstance(data, str):
        if NUL in data:
            section = str(loc[0]) if loc else "body"
            row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            rest = ".".join(str(p) for p in loc[2:])
            found.append(RowError(row, rest or section, NUL_MESSAGE, section))
    elif isinstance(data, dict):
        for key, value in data.items():
            found += _nul_errors(key, (*loc, key)) + _nul_errors(value, (*loc, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _nul_errors(value, (*loc, index))
    return found


def parse_json_bytes(raw: bytes) -> Timetable:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _refuse([RowError(0, "body", f"not valid JSON: {exc}", "body")]) from exc
    if b"\\u0000" in raw:  # JSON carries a NUL only escaped
        errors = _nul_errors(data)
        if errors:
            raise _refuse(errors)
    return parse_json(data)


def parse_csv(text: str) -> Timetable:
    """One row per stop; a train's rows are consecutive and its first row carries the
    train columns (later rows leave them empty or repeat them)."""
    index = text.find(NUL)
    if index >= 0:
        raise _refuse([RowError(text.count("\n", 0, index) + 1, "body", NUL_MESSAGE)])
    # newline="": lines may end in CR LF, LF or a lone CR, as the csv module asks.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        return _parse_rows(reader)
    except csv.Error as exc:  # what it still cannot read: a field over its size limit
        raise _refuse([RowError(reader.line_num, "body", f"unreadable CSV: {exc}")]) from None


def _parse_rows(reader: Iterator[list[str]]) -> Timetable:
    header = [h.strip() for h in next(reader, [])]
    if tuple(header) != CSV_COLUMNS:
        raise _refuse([RowError(1, "header", f"expected {','.join(CSV_COLUMNS)}")])
    errors: list[RowError] = []
    groups: list[tuple[int, dict[str, str], list[tuple[int, dict[str, str]]]]] = []
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(CSV_COLUMNS):
            errors.append(RowError(line_no, "row", f"{len(CSV_COLUMNS)} columns expected"))
            continue
        rec = dict(zip(CSV_COLUMNS, (v.strip() for v in values), strict=True))
        if not groups or groups[-1][1]["train"] != rec["train"]:
            groups.append((line_no, rec, []))
        else:
            head = groups[-1][1]
            for col in TRAIN_COLUMNS:
                if rec[col] and rec[col] != head[col]:
                    errors.append(RowError(line_no, col, f"differs from line {groups[-1][0]}"))
        groups[-1][2].append((line_no, rec))
    timetable = Timetable()
    seen: dict[str, int] = {}
    for first_line, head, rows in groups:
        number = head["train"]
        if number in seen:
            errors.append(RowError(first_line, "train", f"rows of {number} are not together"))
            continue
        seen[number] = first_line
        try:
            model = TimetableIn.model_validate(
                {
                    "trains": [
                        {
                            "number": number,
                            "line": head["line"] or None,
                            "composition": head["composition"],
                            "calendar": {
                                "from": head["valid_from"],
                                "to": head["valid_to"],
                                "weekdays": head["weekdays"] or "1234567",
                            },
                            "stops": [
                                {
                                    "station": r["station"],
                                    "arrive": r["arrive"] or None,
                                    "depart": r["depart"] or None,
                                    "km": r["km"],
                                }
                                for _, r in rows
                            ],
                        }
                    ]
                }
            )
        except pydantic.ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = list(err["loc"])[2:]  # drop ("trains", 0)
                if len(loc) >= 2 and loc[0] == "stops" and isinstance(loc[1], int):
                    line_no, col = rows[loc[1]][0], ".".join(str(p) for p in loc[2:])
                else:
                    line_no = first_line
                    col = {"number": "train", "from": "valid_from", "to": "valid_to"}.get(
                        str(loc[-1]) if loc else "", ".".join(str(p) for p in loc)
                    )
                errors.append(RowError(line_no, col or "row", err["msg"]))
            continue
        draft = from_model(model).trains[0]
        timetable.trains.append(
            TrainDraft(
                draft.train,
                draft.calendar,
                row=first_line,
                stop_rows=tuple(line_no for line_no, _ in rows),
            )
        )
    if errors:
        raise _refuse(errors)
    return timetable


# --- checking and writing ----------------------------------------------------------------


async def import_timetable(services: Services, timetable: Timetable) -> ImportResult:
    """Check everything, then write everything in one transaction."""
    try:
        return await _import(services, timetable)
    except asyncpg.UniqueViolationError as exc:
        # Two imports of the same new train or composition at once: one wins, the other
        # finds it on a retry (as unchanged, or refused if it differs).
        raise Conflict("Another import wrote the same trains just now; retry.") from exc


async def _import(services: Services, timetable: Timetable) -> ImportResult:
    inv = inventory(services)
    numbers = [d.train.number for d in timetable.trains]
    async with services.pool.acquire() as conn, conn.transaction():
        station_codes = {s.code for s in timetable.stations} | await store.existing_codes(
            conn, "stations", {s.station for d in timetable.trains for s in d.train.stops}
        )
        line_codes = {code for code, _ in timetable.lines} | await store.existing_codes(
            conn, "lines", {d.train.line for d in timetable.trains if d.train.line}
        )
        file_compositions = {c.id: c for c, _ in timetable.compositions}
        wanted = set(file_compositions) | {d.train.composition_id for d in timetable.trains}
        stored_compositions = await store.load_compositions(conn, wanted)
        stored_trains = await store.load_trains(conn, numbers)

        errors: list[RowError] = []
        new_compositions: list[tuple[Composition, str]] = []
        for i, (composition, description) in enumerate(timetable.compositions):
            for e in check_composition(composition):
                errors.append(RowError(i, e.field, e.message, "compositions"))
            stored = stored_compositions.get(composition.id)
            if stored is None:
                new_compositions.append((composition, description))
            elif sorted(stored.sections, key=_section_key) != sorted(
                composition.sections, key=_section_key
            ):
                errors.append(
                    RowError(i, "id", "exists with other coaches; use a new id", "compositions")
                )
        all_compositions = set(stored_compositions) | set(file_compositions)
        first_row: dict[str, int] = {}
        new_trains: list[TrainDraft] = []
        unchanged: list[TrainDraft] = []
        for draft in timetable.trains:
            train = draft.train
            for e in check_train(train, stations=station_codes, compositions=all_compositions):
                errors.append(RowError(*draft.locate(e.field), e.message))
            if train.line is not None and train.line not in line_codes:
                errors.append(RowError(*draft.locate("line"), f"unknown line {train.line!r}"))
            if draft.calendar.valid_to < draft.calendar.valid_from:
                errors.append(RowError(*draft.locate("calendar"), "ends before it starts"))
            if train.number in first_row:
                errors.append(
                    RowError(
                        *draft.locate("number"),
                        f"train listed twice (first at row {first_row[train.number]})",
                    )
                )
            first_row.setdefault(train.number, draft.row)
            stored_train = stored_trains.get(train.number)
            if stored_train is None:
                new_trains.append(draft)
            elif stored_train != train:
                errors.append(
                    RowError(
                        *draft.locate("number"),
                        "exists with other stops, times or composition; use a new number",
                    )
                )
            else:
                unchanged.append(draft)
        if errors:
            raise _refuse(errors)

        await store.upsert_stations(conn, timetable.stations)
        await store.upsert_lines(conn, timetable.lines)
        for composition, description in new_compositions:
            await store.insert_composition(conn, composition, description)
        for draft in new_trains:
            await store.insert_train(conn, draft.train, draft.calendar)
        for draft in unchanged:
            await store.upsert_calendar(conn, draft.train.number, draft.calendar)
        now = from_ms(services.clock())
        # From yesterday: an overnight run of yesterday may still be boarding today.
        first = inv.window.first_date(now) - dt.timedelta(days=1)
        runs = 0
        if numbers:
            runs = await store.materialize_runs(conn, first, inv.window.last_date(now), numbers)
    return ImportResult(
        stations=len(timetable.stations),
        compositions_created=len(new_compositions),
        trains_created=len(new_trains),
        trains_unchanged=len(unchanged),
        runs_created=runs,
    )


def _section_key(s: CoachSection) -> tuple[str, str]:
    return (s.coach, s.seat_class)
