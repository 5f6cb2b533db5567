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


class IdempotencyKeyReused(errors.InventoryError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This Idempotency-Key was already used for a different request."


class NotDue(errors.InventoryError):
    code = "not_due"
    http_status = 409
    default_message = "This hold's deadline has not passed yet."


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
