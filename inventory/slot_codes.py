"""Return codes of the slot scripts (``inventory/lua/slot_*.lua``), and their exceptions.

One table maps every negative code a script can return to the typed error the service
raises; adding a code to a script means adding it here.
"""

from __future__ import annotations

from enum import IntEnum

from inventory import errors


class SlotCode(IntEnum):
    OK = 0
    REPLAY = 1
    NOT_FOUND = -1
    NOT_RELEASED = -2
    SOLD_OUT = -3
    PERSON_LIMIT = -4
    HOLD_CAP = -5
    NOT_OWNER = -6
    HOLD_NOT_LIVE = -7
    HOLD_EXPIRED = -8
    CLOSED = -9
    IDEMPOTENCY_MISMATCH = -10
    NOT_DUE = -11
    SALES_CLOSED = -12
    # -13 is slot_uncool's "an order waits" (the waitlist reads it itself, never raised).
    SERIES_HOLD = -14


class IdempotencyKeyReused(errors.InventoryError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This Idempotency-Key was already used for a different request."


class NotDue(errors.InventoryError):
    code = "not_due"
    http_status = 409
    default_message = "This hold's deadline has not passed yet."


class SeriesHold(errors.InventoryError):
    """A dose of a vaccine series (dose 1 + dose 2 booked together) is confirmed and
    cancelled only with the rest of its series: "never dose 1 without dose 2"."""

    code = "series_hold"
    http_status = 409
    default_message = (
        "This booking is one dose of a vaccination series: confirm or cancel the whole "
        "series with POST /v1/vaccine/bookings/{series_id}/confirm or /cancel."
    )

    @classmethod
    def of(cls, series_id: str) -> SeriesHold:
        """The refusal naming the series and the route that acts on it as a whole."""
        route = f"/v1/vaccine/bookings/{series_id}"
        return cls(
            "This booking is one dose of a vaccination series, confirmed or cancelled only "
            f"as a whole: POST {route}/confirm or POST {route}/cancel.",
            series_id=series_id,
        )


_ERRORS: dict[SlotCode, type[errors.InventoryError]] = {
    SlotCode.NOT_FOUND: errors.NotFoundInInventory,
    SlotCode.NOT_RELEASED: errors.NotReleased,
    SlotCode.SOLD_OUT: errors.SoldOut,
    SlotCode.PERSON_LIMIT: errors.PersonLimitReached,
    SlotCode.HOLD_CAP: errors.HoldCapReached,
    SlotCode.NOT_OWNER: errors.NotOwner,
    SlotCode.HOLD_NOT_LIVE: errors.HoldNotLive,
    SlotCode.HOLD_EXPIRED: errors.HoldExpired,
    SlotCode.CLOSED: errors.Closed,
    SlotCode.IDEMPOTENCY_MISMATCH: IdempotencyKeyReused,
    SlotCode.NOT_DUE: NotDue,
    SlotCode.SALES_CLOSED: errors.SalesClosed,
    SlotCode.SERIES_HOLD: SeriesHold,
}


def check(code: int) -> SlotCode:
    """Return the success code, or raise the typed error for a refusal."""
    result = SlotCode(code)
    if result < 0:
        raise _ERRORS[result]()
    return result


def code_of(error: errors.InventoryError) -> SlotCode:
    """The script code a refusal came from (the inverse of ``check``)."""
    return next(code for code, cls in _ERRORS.items() if type(error) is cls)
