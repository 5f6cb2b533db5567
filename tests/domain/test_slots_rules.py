"""Publication rules for slots (pure): every error kind, overlaps, exact republication."""

from __future__ import annotations

import datetime as dt

import pytest

from reservation.domain.slots import (
    MAX_CAPACITY,
    ExistingSlot,
    RowError,
    SlotDraft,
    check_publication,
    hold_deadline_ms,
)

NOW = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
DAY = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)


def at(hour: float) -> dt.datetime:
    """A time on the day after NOW."""
    return DAY + dt.timedelta(hours=hour)


def draft(
    row: int,
    start: float,
    end: float,
    *,
    code: str = "dr-li",
    capacity: int = 5,
    release: dt.datetime = NOW,
) -> SlotDraft:
    return SlotDraft(
        row=row,
        resource_code=code,
        starts_at=at(start),
        ends_at=at(end),
        capacity=capacity,
        release_at=release,
    )


def existing(
    slot_id: str,
    start: float,
    end: float,
    *,
    code: str = "dr-li",
    capacity: int = 5,
    release: dt.datetime = NOW,
) -> ExistingSlot:
    return ExistingSlot(
        slot_id=slot_id,
        resource_code=code,
        starts_at=at(start),
        ends_at=at(end),
        capacity=capacity,
        release_at=release,
    )


def check(
    drafts: list[SlotDraft],
    existing_slots: list[ExistingSlot] | None = None,
    resources: tuple[str, ...] = ("dr-li", "dr-wang"),
) -> tuple[list[RowError], dict[int, str]]:
    return check_publication(
        drafts, known_resources=resources, existing=existing_slots or [], now=NOW
    )


def test_a_clean_batch_passes() -> None:
    drafts = [draft(0, 8, 8.5), draft(1, 8.5, 9), draft(2, 8, 8.5, code="dr-wang")]
    assert check(drafts) == ([], {})


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (draft(0, 8, 9, code="dr-nobody"), RowError(0, "resource_code", "unknown resource")),
        (
            draft(0, 8, 9, capacity=0),
            RowError(0, "capacity", f"must be between 1 and {MAX_CAPACITY}"),
        ),
        (
            draft(0, 8, 9, capacity=-3),
            RowError(0, "capacity", f"must be between 1 and {MAX_CAPACITY}"),
        ),
        (
            draft(0, 8, 9, capacity=MAX_CAPACITY + 1),
            RowError(0, "capacity", f"must be between 1 and {MAX_CAPACITY}"),
        ),
        (draft(0, 9, 9), RowError(0, "ends_at", "must be after starts_at")),
        (draft(0, 9, 8), RowError(0, "ends_at", "must be after starts_at")),
        (draft(0, 1, 25.01), RowError(0, "ends_at", "a slot lasts at most 24 hours")),
        (
            SlotDraft(0, "dr-li", NOW, NOW + dt.timedelta(hours=1), 5, NOW),
            RowError(0, "starts_at", "is in the past"),
        ),
        (
            SlotDraft(
                0,
                "dr-li",
                NOW + dt.timedelta(days=401),
                NOW + dt.timedelta(days=401, hours=1),
                5,
                NOW,
            ),
            RowError(0, "starts_at", "is too far in the future"),
        ),
        (
            draft(0, 8, 9, release=at(8) + dt.timedelta(seconds=1)),
            RowError(0, "release_at", "must not be after starts_at"),
        ),
    ],
)
def test_each_error_kind_is_reported(bad: SlotDraft, expected: RowError) -> None:
    assert check([bad]) == ([expected], {})


def test_limits_themselves_are_allowed() -> None:
    edge = [
        draft(0, 0, 24, capacity=MAX_CAPACITY),  # exactly 24 hours, exactly the max capacity
        draft(1, 8, 9, capacity=1, code="dr-wang", release=at(8)),  # released at the start
    ]
    assert check(edge) == ([], {})


def test_every_offending_row_is_reported_at_once_sorted_by_row_and_field() -> None:
    drafts = [draft(0, 8, 9), draft(1, 9, 8, capacity=0, code="dr-x"), draft(2, 10, 11)]
    errors, _ = check(drafts)
    assert [(e.row, e.field) for e in errors] == [
        (1, "capacity"),
        (1, "ends_at"),
        (1, "resource_code"),
    ]


def test_overlap_within_the_batch_names_the_earlier_row() -> None:
    errors, _ = check([draft(0, 9, 10), draft(1, 8.5, 9.5)])
    assert errors == [RowError(0, "starts_at", "overlaps row 1 of the same resource")]


def test_touching_slots_do_not_overlap_and_other_resources_are_independent() -> None:
    drafts = [draft(0, 8, 9), draft(1, 9, 10), draft(2, 8, 10, code="dr-wang")]
    assert check(drafts) == ([], {})


def test_a_long_slot_covering_two_later_ones_is_caught_against_each() -> None:
    drafts = [draft(0, 8, 12), draft(1, 9, 9.5), draft(2, 10, 10.5), draft(3, 12, 13)]
    errors, _ = check(drafts)
    assert errors == [
        RowError(1, "starts_at", "overlaps row 0 of the same resource"),
        RowError(2, "starts_at", "overlaps row 0 of the same resource"),
    ]


def test_a_chain_of_overlaps_reports_each_link() -> None:
    errors, _ = check([draft(0, 8, 9.5), draft(1, 9, 10.5), draft(2, 10, 11)])
    assert errors == [
        RowError(1, "starts_at", "overlaps row 0 of the same resource"),
        RowError(2, "starts_at", "overlaps row 1 of the same resource"),
    ]


def test_the_same_slot_twice_in_one_batch_overlaps_itself() -> None:
    errors, republished = check([draft(0, 8, 9), draft(1, 8, 9)])
    assert errors == [RowError(1, "starts_at", "overlaps row 0 of the same resource")]
    assert republished == {}


def test_exact_republication_is_recognised_not_an_overlap() -> None:
    errors, republished = check(
        [draft(0, 8, 9), draft(1, 9, 10)], [existing("s1-aaaa", 8, 9), existing("s1-bbbb", 9, 10)]
    )
    assert errors == []
    assert republished == {0: "s1-aaaa", 1: "s1-bbbb"}


@pytest.mark.parametrize(
    "changed",
    [
        draft(0, 8, 9, capacity=6),
        draft(0, 8, 9, release=NOW + dt.timedelta(hours=1)),
        draft(0, 8, 9.5),
        draft(0, 8.5, 9),
    ],
    ids=["capacity", "release", "longer", "later-start"],
)
def test_a_changed_slot_over_a_published_one_is_an_overlap(changed: SlotDraft) -> None:
    errors, republished = check([changed], [existing("s1-aaaa", 8, 9)])
    assert errors == [RowError(0, "starts_at", "overlaps published slot s1-aaaa")]
    assert republished == {}


def test_published_slots_of_another_resource_do_not_count() -> None:
    errors, republished = check([draft(0, 8, 9)], [existing("s1-aaaa", 8, 9, code="dr-wang")])
    assert (errors, republished) == ([], {})


def test_hold_deadline_is_the_hold_period_but_never_past_the_slot_end() -> None:
    assert hold_deadline_ms(1_000_000, 600, 10_000_000) == 1_600_000
    assert hold_deadline_ms(1_000_000, 600, 1_200_000) == 1_200_000
    assert hold_deadline_ms(1_000_000, 600, 1_600_000) == 1_600_000
