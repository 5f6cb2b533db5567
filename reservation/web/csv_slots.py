"""Slot rows from a CSV file (pure; no I/O): what the provider console uploads.

Every offending row is reported at once with its CSV line number, so staff can fix the
file in one pass; a file with any bad row publishes nothing (the caller stops here, and
the publish workflow is all-or-nothing for the rest).

Columns (a header line first; order free, extra columns refused so typos are caught):
``resource_code, starts_at, ends_at, capacity, release_at``. Times are ISO 8601
(``2026-11-26T14:00`` or ``2026-11-26 14:00``); without an offset they are China time,
as staff write them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

from reservation.domain.clock import CHINA
from reservation.domain.slots import SlotDraft

COLUMNS = ("resource_code", "starts_at", "ends_at", "capacity", "release_at")
MAX_ROWS = 5000
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ParsedCsv:
    # Complete only when ``errors`` is empty; then ``drafts[i].row == i``, on CSV line
    # ``lines[i]``.
    drafts: list[SlotDraft]
    lines: list[int]
    errors: list[dict[str, Any]]


def _error(row: int | None, line: int, field: str, message: str) -> dict[str, Any]:
    return {"row": row, "line": line, "field": field, "message": message}


def _time(raw: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(raw.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CHINA)


def parse_slots_csv(text: str) -> ParsedCsv:
    """Lines may end in CR LF, LF or a lone CR (``newline=""``, as the csv module asks); what
    the csv module still cannot read (a field over its size limit) is an error for that line."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), skipinitialspace=True)
    try:
        return _parse(reader)
    except csv.Error as exc:
        return ParsedCsv([], [], [_error(None, reader.line_num, "row", f"unreadable CSV: {exc}")])


def _parse(reader: csv.DictReader[str]) -> ParsedCsv:
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    errors: list[dict[str, Any]] = []
    missing = [c for c in COLUMNS if c not in header]
    extra = [h for h in header if h not in COLUMNS]
    if missing or extra:
        if missing:
            errors.append(_error(None, 1, "header", "missing column(s): " + ", ".join(missing)))
        if extra:
            errors.append(_error(None, 1, "header", "unknown column(s): " + ", ".join(extra)))
        return ParsedCsv([], [], errors)
    drafts: list[SlotDraft] = []
    lines: list[int] = []
    for record in reader:
        line = reader.line_num
        row = len(lines)
        if all(not (v or "").strip() for k, v in record.items() if k is not None):
            continue  # a blank line (editors add them at the end)
        if row >= MAX_ROWS:
            errors.append(_error(row, line, "row", f"at most {MAX_ROWS} rows per file"))
            break
        lines.append(line)
        if None in record:
            errors.append(_error(row, line, "row", "more values than columns"))
            continue
        values = {k: (v or "").strip() for k, v in record.items()}
        bad = len(errors)
        code = values["resource_code"]
        if not _CODE.fullmatch(code):
            errors.append(_error(row, line, "resource_code", "letters, digits, _ . - (1-64)"))
        times: dict[str, dt.datetime] = {}
        for name in ("starts_at", "ends_at", "release_at"):
            try:
                times[name] = _time(values[name])
            except ValueError:
                errors.append(
                    _error(row, line, name, "not a date and time (e.g. 2026-11-26 14:00)")
                )
        try:
            capacity = int(values["capacity"])
        except ValueError:
            errors.append(_error(row, line, "capacity", "not a whole number"))
            capacity = 0
        if len(errors) == bad:
            drafts.append(
                SlotDraft(
                    row=row,
                    resource_code=code,
                    starts_at=times["starts_at"],
                    ends_at=times["ends_at"],
                    capacity=capacity,
                    release_at=times["release_at"],
                )
            )
    if not lines and not errors:
        errors.append(_error(None, 1, "file", "no slot rows"))
    return ParsedCsv(drafts, lines, errors)
