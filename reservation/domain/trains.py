"""Timetables and seat layouts (pure; no I/O).

A *train* is a timetable: a number, its stops and a composition. A *run* is that train on
one service date (the date it leaves its origin). Stop times are kept as minutes after the
origin departure, so a run's times follow from one departure moment and an overnight train
needs no special case. Segment ``i`` runs from stop ``i`` to stop ``i + 1``: a trip boarding
at stop ``a`` and alighting at stop ``b`` occupies segments ``[a, b)``, the convention of
:mod:`inventory.segments`.

Timetable rules, checked by :func:`check_train` (every offending field reported at once):
- at least two stops, each station at most once, at most 64 stops (63 segments);
- the origin has only a departure, the terminus only an arrival, other stops both;
- times never go backwards (a clock time earlier than the previous one is the next day),
  and no two consecutive times are more than 12 hours apart;
- distances start at 0 and strictly increase.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from inventory.seat_model import SeatSpec
from inventory.segments import MAX_SEGMENTS
from reservation.domain.clock import CHINA

# Classes in the order they are listed to citizens; the inventory engine knows these four.
SEAT_CLASSES = ("business", "first", "second", "sleeper")
TRAIN_KINDS = ("G", "C", "D", "Z", "T", "K")
TRAIN_NUMBER = re.compile(r"^(G|C|D|Z|T|K)[1-9]\d{0,4}$")
STATION_CODE = re.compile(r"^[A-Z]{3}$")
DAY_MINUTES = 24 * 60
MAX_STEP_MIN = 12 * 60  # longest plausible gap between two consecutive stop times

# Seat letters of one row (or one side of a sleeper compartment) per layout, and the class
# each layout belongs to. Second class: A B C | D F, A/F window, C/D aisle, B middle.
# Sleepers: a compartment has two sides; "sleeper6" is a 6-berth (lower, middle, upper)
# compartment, "sleeper4" the 4-berth soft-sleeper one (lower, upper).
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "1+2": ("business", ("A", "C", "F")),
    "2+2": ("first", ("A", "C", "D", "F")),
    "2+3": ("second", ("A", "B", "C", "D", "F")),
    "sleeper4": ("sleeper", ("L", "U")),
    "sleeper6": ("sleeper", ("L", "M", "U")),
}


@dataclass(frozen=True, slots=True)
class Station:
    code: str
    name_zh: str
    name_en: str
    city: str


@dataclass(frozen=True, slots=True)
class CoachSection:
    """Seats of one class in one coach: ``rows`` rows numbered from ``first_row``. A
    sleeper "row" is a compartment: its berths are numbered two per compartment (sides)."""

    coach: str
    seat_class: str
    layout: str
    rows: int
    first_row: int = 1

    def seats(self) -> list[SeatSpec]:
        _, letters = LAYOUTS[self.layout]
        if self.seat_class == "sleeper":
            # Compartment k has sides 2k-1 and 2k, each with its berths (e.g. 03L, 04U).
            return [
                SeatSpec(self.coach, 2 * (self.first_row + r) - 1 + side, letter)
                for r in range(self.rows)
                for side in (0, 1)
                for letter in letters
            ]
        return [
            SeatSpec(self.coach, self.first_row + r, letter)
            for r in range(self.rows)
            for letter in letters
        ]


@dataclass(frozen=True, slots=True)
class Composition:
    id: str
    sections: tuple[CoachSection, ...]

    def seat_maps(self) -> dict[str, list[SeatSpec]]:
        """Class -> its seats in coach, row, letter order (the engine's adjacency order)."""
        maps: dict[str, list[SeatSpec]] = {}
        for section in self.sections:
            maps.setdefault(section.seat_class, []).extend(section.seats())
        return {cls: maps[cls] for cls in SEAT_CLASSES if cls in maps}

    def capacity(self) -> dict[str, int]:
        return {cls: len(seats) for cls, seats in self.seat_maps().items()}


@dataclass(frozen=True, slots=True)
class Stop:
    station: str  # station code
    arrive_min: int | None  # minutes after the origin departure; None at the origin
    depart_min: int | None  # None at the terminus
    km: int


@dataclass(frozen=True, slots=True)
class Train:
    number: str
    kind: str
    composition_id: str
    departs_min: int  # origin departure, minutes after midnight China time
    stops: tuple[Stop, ...]
    line: str | None = None

    @property
    def nseg(self) -> int:
        return len(self.stops) - 1

    def index_of(self, station: str) -> int | None:
        for i, stop in enumerate(self.stops):
            if stop.station == station:
                return i
        return None

    def segment(self, origin: str, destination: str) -> tuple[int, int] | None:
        """``(a, b)`` for a trip between two stations of this train in its direction."""
        a, b = self.index_of(origin), self.index_of(destination)
        if a is None or b is None or a >= b:
            return None
        return a, b

    def distance_km(self, a: int, b: int) -> int:
        return self.stops[b].km - self.stops[a].km

    def duration_min(self, a: int, b: int) -> int:
        depart, arrive = self.stops[a].depart_min, self.stops[b].arrive_min
        if depart is None or arrive is None:
            raise ValueError(f"no trip from stop {a} to stop {b}")
        return arrive - depart


@dataclass(frozen=True, slots=True)
class TrainRun:
    run_id: str
    train: Train
    service_date: dt.date

    @property
    def origin_departure(self) -> dt.datetime:
        midnight = dt.datetime.combine(self.service_date, dt.time(), tzinfo=CHINA)
        return midnight + dt.timedelta(minutes=self.train.departs_min)

    def departure_at(self, i: int) -> dt.datetime | None:
        offset = self.train.stops[i].depart_min
        return None if offset is None else self.origin_departure + dt.timedelta(minutes=offset)

    def arrival_at(self, i: int) -> dt.datetime | None:
        offset = self.train.stops[i].arrive_min
        return None if offset is None else self.origin_departure + dt.timedelta(minutes=offset)


def run_id_for(number: str, service_date: dt.date) -> str:
    return f"{number}-{service_date:%Y%m%d}"


def service_date_for(train: Train, boarding: int, boarding_date: dt.date) -> dt.date:
    """The service date of the run that leaves stop ``boarding`` on ``boarding_date``
    (an overnight train reaches later stops on the next day)."""
    offset = train.stops[boarding].depart_min or 0
    return boarding_date - dt.timedelta(days=(train.departs_min + offset) // DAY_MINUTES)


def format_duration(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def parse_clock(text: str) -> int:
    """``"HH:MM"`` -> minutes after midnight; ValueError otherwise."""
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time HH:MM")
    return int(match[1]) * 60 + int(match[2])


def offsets_from_clock(
    departs_min: int, times: Sequence[tuple[int | None, int | None]]
) -> list[tuple[int | None, int | None]]:
    """Clock times (minutes after midnight) of each stop's arrival and departure ->
    minutes after the origin departure, rolling over midnight whenever a time is earlier
    than the one before it (timetables print clock times, never dates)."""
    out: list[tuple[int | None, int | None]] = []
    base, last = 0, departs_min
    for arrive, depart in times:
        pair: list[int | None] = []
        for clock in (arrive, depart):
            if clock is None:
                pair.append(None)
                continue
            if clock + base < last:
                base += DAY_MINUTES
            last = clock + base
            pair.append(last - departs_min)
        out.append((pair[0], pair[1]))
    return out


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


def check_train(train: Train, *, stations: set[str], compositions: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    match = TRAIN_NUMBER.match(train.number)
    if match is None:
        errors.append(FieldError("number", "a letter G, C, D, Z, T or K and 1-5 digits"))
    elif train.kind != match[1]:
        errors.append(FieldError("kind", f"train {train.number} is of kind {match[1]}"))
    if train.composition_id not in compositions:
        errors.append(FieldError("composition", f"unknown composition {train.composition_id!r}"))
    if not 0 <= train.departs_min < DAY_MINUTES:
        errors.append(FieldError("departs", "a time of day"))
    stops = train.stops
    if not 2 <= len(stops) <= MAX_SEGMENTS + 1:
        errors.append(FieldError("stops", f"a train has 2..{MAX_SEGMENTS + 1} stops"))
        return errors
    seen: set[str] = set()
    last_time = 0
    for i, stop in enumerate(stops):
        where = f"stops[{i}]"
        if stop.station not in stations:
            errors.append(FieldError(f"{where}.station", f"unknown station {stop.station!r}"))
        if stop.station in seen:
            errors.append(FieldError(f"{where}.station", "the train calls here twice"))
        seen.add(stop.station)
        first, last = i == 0, i == len(stops) - 1
        if first and (stop.arrive_min is not None or stop.depart_min != 0):
            errors.append(FieldError(where, "the origin has a departure and no arrival"))
        if last and (stop.depart_min is not None or stop.arrive_min is None):
            errors.append(FieldError(where, "the terminus has an arrival and no departure"))
        if not (first or last) and (stop.arrive_min is None or stop.depart_min is None):
            errors.append(FieldError(where, "an intermediate stop has arrival and departure"))
        for name, value in (("arrive", stop.arrive_min), ("depart", stop.depart_min)):
            if value is None:
                continue
            if value < last_time:
                errors.append(FieldError(f"{where}.{name}", "times go backwards"))
            elif value - last_time > MAX_STEP_MIN:
                # Most likely a typo read as "the next day" (see offsets_from_clock).
                errors.append(
                    FieldError(f"{where}.{name}", "more than 12 h after the previous time")
                )
            last_time = max(last_time, value)
        if first and stop.km != 0:
            errors.append(FieldError(f"{where}.km", "the origin is at km 0"))
        if not first and stop.km <= stops[i - 1].km:
            errors.append(FieldError(f"{where}.km", "distances must strictly increase"))
    return errors


def check_composition(composition: Composition) -> list[FieldError]:
    errors: list[FieldError] = []
    if not composition.sections:
        errors.append(FieldError("coaches", "a composition has at least one coach"))
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(composition.sections):
        where = f"coaches[{i}]"
        layout = LAYOUTS.get(s.layout)
        if layout is None:
            errors.append(FieldError(f"{where}.layout", f"one of {', '.join(LAYOUTS)}"))
        elif layout[0] != s.seat_class:
            errors.append(FieldError(f"{where}.layout", f"layout {s.layout} is {layout[0]}"))
        if (s.coach, s.seat_class) in seen:
            errors.append(FieldError(where, "this coach lists this class twice"))
        seen.add((s.coach, s.seat_class))
        if not re.fullmatch(r"\d{2}", s.coach):
            errors.append(FieldError(f"{where}.coach", "two digits, e.g. 01"))
        if not 1 <= s.rows <= 40 or not 1 <= s.first_row <= 40:
            errors.append(FieldError(f"{where}.rows", "1..40 rows, first row 1..40"))
    if not errors:
        specs = [spec for seats in composition.seat_maps().values() for spec in seats]
        if len(set(specs)) != len(specs):
            errors.append(FieldError("coaches", "two sections number the same seat"))
    return errors


@dataclass(frozen=True, slots=True)
class ServiceCalendar:
    valid_from: dt.date
    valid_to: dt.date
    weekdays: str = "1234567"  # ISO weekdays, 1 = Monday

    def runs_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to and str(day.isoweekday()) in self.weekdays
