"""Real-name identity (pure): GB 11643 check digit, birth dates, masking, keyed hashing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from reservation.domain.identity import (
    InvalidIdNumber,
    ResidentId,
    id_hmac,
    mask_id,
    mask_phone,
    parse_resident_id,
)

KEY = b"test-hmac"
TODAY = dt.date(2025, 3, 1)


def with_check_digit(body: str) -> str:
    """The 17 digits plus their GB 11643 check digit."""
    return body + ric.calc_check_digit(body + "0")


VALID = with_check_digit("11010519900101002")  # Beijing Chaoyang, born 1990-01-01
VALID_X = "11010519491231002X"  # a real-shaped number whose check digit is X


def test_a_valid_number_is_hashed_masked_and_dated() -> None:
    got = parse_resident_id(VALID, hmac_key=KEY, today=TODAY)
    assert got == ResidentId(
        hmac_hex=hmac.new(KEY, VALID.encode(), hashlib.sha256).hexdigest(),
        masked="110105********" + VALID[-4:],
        birth_date=dt.date(1990, 1, 1),
    )
    assert VALID[6:14] not in got.masked  # the birth date is not shown


def test_check_digit_x_in_either_case_is_one_person() -> None:
    assert ric.calc_check_digit(VALID_X) == "X"
    upper = parse_resident_id(VALID_X, hmac_key=KEY, today=TODAY)
    lower = parse_resident_id(VALID_X.lower(), hmac_key=KEY, today=TODAY)
    assert upper == lower
    assert upper.masked == "110105********002X"
    assert upper.birth_date == dt.date(1949, 12, 31)


def test_surrounding_spaces_are_ignored() -> None:
    assert parse_resident_id(f"  {VALID} ", hmac_key=KEY, today=TODAY) == parse_resident_id(
        VALID, hmac_key=KEY, today=TODAY
    )


@given(st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_any_single_changed_digit_breaks_the_checksum(position: int, delta: int) -> None:
    digits = list(VALID)
    digits[position] = str((int(digits[position]) + delta) % 10)
    changed = "".join(digits)
    # A changed digit can also make the region or the date impossible: refused either way.
    with pytest.raises(InvalidIdNumber):
        parse_resident_id(changed, hmac_key=KEY, today=TODAY)


def test_a_wrong_check_digit_is_refused() -> None:
    wrong = VALID[:-1] + ("0" if VALID[-1] != "0" else "1")
    with pytest.raises(InvalidIdNumber, match="checksum"):
        parse_resident_id(wrong, hmac_key=KEY, today=TODAY)


@pytest.mark.parametrize("birth", ["19900230", "19901301", "19900100", "19890229"])
def test_an_impossible_birth_date_is_refused(birth: str) -> None:
    number = with_check_digit(f"110105{birth}002")  # checksum right, date impossible
    with pytest.raises(InvalidIdNumber):
        parse_resident_id(number, hmac_key=KEY, today=TODAY)


def test_a_leap_day_is_a_real_birth_date() -> None:
    number = with_check_digit("11010519880229002")
    assert parse_resident_id(number, hmac_key=KEY, today=TODAY).birth_date == dt.date(1988, 2, 29)


def test_a_birth_date_after_today_is_refused_but_today_is_fine() -> None:
    tomorrow = with_check_digit("11010520250302002")
    with pytest.raises(InvalidIdNumber, match="future"):
        parse_resident_id(tomorrow, hmac_key=KEY, today=TODAY)
    born_today = with_check_digit("11010520250301002")
    assert parse_resident_id(born_today, hmac_key=KEY, today=TODAY).birth_date == TODAY


@pytest.mark.parametrize(
    "raw", ["", "110105199001010", VALID + "1", VALID[:-2] + "A" + VALID[-1], "11010519900101002Y"]
)
def test_wrong_length_or_characters_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdNumber):
        parse_resident_id(raw, hmac_key=KEY, today=TODAY)


def test_an_unknown_region_is_refused() -> None:
    number = with_check_digit("00000019900101002")
    with pytest.raises(InvalidIdNumber):
        parse_resident_id(number, hmac_key=KEY, today=TODAY)


def test_the_hmac_depends_on_the_key_and_the_number() -> None:
    other = with_check_digit("11010519900101003")
    a = parse_resident_id(VALID, hmac_key=KEY, today=TODAY).hmac_hex
    assert parse_resident_id(VALID, hmac_key=b"another-key", today=TODAY).hmac_hex != a
    assert parse_resident_id(other, hmac_key=KEY, today=TODAY).hmac_hex != a
    assert parse_resident_id(VALID, hmac_key=KEY, today=TODAY).hmac_hex == a
    assert len(a) == 64
    assert VALID not in a


def test_id_hmac_upper_cases_before_hashing() -> None:
    assert (
        id_hmac(VALID_X.lower(), KEY)
        == id_hmac(VALID_X, KEY)
        == hmac.new(KEY, VALID_X.encode(), hashlib.sha256).hexdigest()
    )


def test_masking() -> None:
    assert mask_id("11010519900101002X") == "110105********002X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("1234567") == "123****4567"
    assert mask_phone("123456") == "****"
