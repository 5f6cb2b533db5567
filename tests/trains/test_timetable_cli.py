"""`fairseat timetable import FILE`: a bad file is refused with a message and an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from reservation.commands.timetable import _import
from reservation.settings import Settings

HEADER = "train,composition,line,valid_from,valid_to,weekdays,station,arrive,depart,km"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "nul.json",
            b'{"stations":[{"code":"ZZQ","name_zh":"\\u0000","name_en":"T","city":"X"}]}',
            "stations row 0: name_zh: must not contain the NUL character (U+0000)",
        ),
        (
            "nul.csv",
            f"{HEADER}\nG9,x\x00,,2026-01-01,2026-02-01,,VNP,,08:00,0\n".encode(),
            "trains row 2: body: must not contain the NUL character (U+0000)",
        ),
        ("latin1.csv", HEADER.encode() + b"\n\xff\xfe\n", "Not UTF-8"),
    ],
)
def test_a_bad_file_is_refused_without_a_traceback(
    tmp_path: Path,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    expected: str,
) -> None:
    """A NUL reached Postgres (a driver error and a traceback); now the file is refused
    before any server is started, naming the line or field, exit code 1."""
    path = tmp_path / name
    path.write_bytes(content)
    assert _import(settings, path) == 1
    assert expected in capsys.readouterr().out


def test_a_missing_file_is_exit_code_2(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _import(settings, tmp_path / "absent.json") == 2
    assert "Cannot read" in capsys.readouterr().out
