"""The waitlist's pure rules, without servers."""

from __future__ import annotations

import datetime as dt

import pytest

from reservation.fairness.waitlist import (
    SeatPiece,
    WaitlistRuleError,
    check_deadline,
    check_slot_choices,
    check_train_choices,
    choose_pieces,
    position,
    slot_days,
    sold_out,
)
from reservation.settings import Settings, SettingsError


def test_pieces_must_contain_the_trip_and_the_tightest_go_first() -> None:
    pieces = [
        SeatPiece("whole", 0, 3, "00001"),
        SeatPiece("start", 0, 1, "00002"),
        SeatPiece("tight", 1, 2, "00003"),
        SeatPiece("end", 1, 3, "00004"),
    ]
    assert choose_pieces(pieces, 1, 2, 1) == ["tight"]
    assert choose_pieces(pieces, 1, 2, 3) == ["tight", "end", "whole"]
    assert choose_pieces(pieces, 1, 2, 4) is None  # "start" does not cover [1, 2)
    assert choose_pieces(pieces, 0, 3, 1) == ["whole"]
    assert choose_pieces([], 0, 1, 1) is None


def test_position_counts_only_earlier_waiting_orders() -> None:
    assert position(5, []) == 1
    assert position(5, [1, 3, 5, 9]) == 3


def test_sold_out_means_fewer_seats_than_passengers() -> None:
    assert sold_out(0, 1)
    assert sold_out(2, 3)
    assert not sold_out(3, 3)


def test_days_deadlines_and_choices() -> None:
    today = dt.date(2026, 12, 1)
    assert slot_days(today, today + dt.timedelta(days=2), today, 31) == [
        today,
        today + dt.timedelta(days=1),
        today + dt.timedelta(days=2),
    ]
    for first, last in (
        (today, today - dt.timedelta(days=1)),
        (today - dt.timedelta(days=1), today),
    ):
        with pytest.raises(WaitlistRuleError):
            slot_days(first, last, today, 31)
    with pytest.raises(WaitlistRuleError):
        slot_days(today, today + dt.timedelta(days=40), today, 31)
    now = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    check_deadline(now, now + dt.timedelta(hours=1), 31)
    for bad in (now, now + dt.timedelta(days=32)):
        with pytest.raises(WaitlistRuleError):
            check_deadline(now, bad, 31)
    with pytest.raises(WaitlistRuleError):
        check_slot_choices(["a", "a"], [today])
    with pytest.raises(WaitlistRuleError):
        check_slot_choices([str(i) for i in range(11)], [today] * 10)
    with pytest.raises(WaitlistRuleError):
        check_train_choices([])
    with pytest.raises(WaitlistRuleError):
        check_train_choices([("G1", "first"), ("G1", "first")])


def test_a_reversed_handoff_range_is_refused_at_start_up() -> None:
    env = {"FAIRSEAT_HANDOFF_DELAY_MIN_MS": "5000", "FAIRSEAT_HANDOFF_DELAY_MAX_MS": "1000"}
    with pytest.raises(SettingsError):
        Settings.from_env(env)
    assert Settings.from_env({}).handoff_delay_min_ms == 30_000
