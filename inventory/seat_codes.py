"""Return codes of the seat scripts (``inventory/lua/seat_*.lua``) and their typed errors.

0 and 1 are answers; negative codes are refusals made before the script's first write, so a
refusal never changed anything. The numbers are the contract with the Lua files: a changed
meaning gets a new number, never a reused one.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from inventory.errors import (
    AlreadyExists,
    HoldExpired,
    HoldNotLive,
    InventoryError,
    NotFoundInInventory,
    NotOwner,
    PersonLimitReached,
    SalesClosed,
    SoldOut,
)


class SeatCode(IntEnum):
    OK = 0
    REPLAY = 1  # idempotent retry, or nothing left to do: the state is final already
    NOT_LOADED = -1  # no seat map published for this (run, class)
    BAD_REQUEST = -2  # arguments the Python layer should have refused
    NO_SEAT = -3  # not enough seats free on every segment of the trip
    PERSON_LIMIT = -4  # a passenger already has a live ticket on this run
    IDEMPOTENCY_MISMATCH = -5  # the key was used before for a different request
    HOLD_NOT_FOUND = -6  # unknown hold, or another account's
    HOLD_NOT_LIVE = -7  # the hold is in a state that does not allow the operation
    HOLD_EXPIRED = -8  # confirm after the payment deadline
    NOT_DUE = -9  # expire before the deadline
    CHANGE_PENDING = -10  # a 改签 hold waits for the old ticket's decision
    CHANGE_ABORTED = -11  # the 改签 was aborted at the old ticket; it can never commit
    MAP_MISMATCH = -12  # a different seat map was already published for this (run, class)
    CORRUPT = -13  # a hold's seats are not sold as recorded; nothing was written
    # The shard's epoch marker is not the epoch the caller expects: Redis lost data or a
    # rebuild runs (issue 4). Not -12 as for slots: that number was taken here already.
    SALES_CLOSED = -14


class InvalidSeatRequest(InventoryError):
    code = "invalid_seat_request"
    http_status = 400
    default_message = "The seat request is malformed."


class NoSeatForSegments(SoldOut):
    code = "no_seat_for_segments"
    http_status = 409
    default_message = "Not enough seats are free on every segment of this trip."


class IdempotencyKeyReused(InventoryError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This idempotency key was already used for a different request."


class HoldNotDue(InventoryError):
    code = "hold_not_due"
    http_status = 409
    default_message = "The payment deadline of this hold has not passed yet."


class ChangePending(InventoryError):
    code = "change_pending"
    http_status = 409
    default_message = "This ticket change is still being completed; retry shortly."


class ChangeAborted(InventoryError):
    code = "change_aborted"
    http_status = 409
    default_message = "The ticket change was abandoned; the original ticket stands."


class InventoryCorrupt(InventoryError):
    code = "inventory_corrupt"
    http_status = 500
    default_message = "The live inventory disagrees with this hold; an operator must reconcile."


ERRORS: dict[SeatCode, type[InventoryError]] = {
    SeatCode.NOT_LOADED: NotFoundInInventory,
    SeatCode.BAD_REQUEST: InvalidSeatRequest,
    SeatCode.NO_SEAT: NoSeatForSegments,
    SeatCode.PERSON_LIMIT: PersonLimitReached,
    SeatCode.IDEMPOTENCY_MISMATCH: IdempotencyKeyReused,
    SeatCode.HOLD_NOT_FOUND: NotOwner,
    SeatCode.HOLD_NOT_LIVE: HoldNotLive,
    SeatCode.HOLD_EXPIRED: HoldExpired,
    SeatCode.NOT_DUE: HoldNotDue,
    SeatCode.CHANGE_PENDING: ChangePending,
    SeatCode.CHANGE_ABORTED: ChangeAborted,
    SeatCode.MAP_MISMATCH: AlreadyExists,
    SeatCode.CORRUPT: InventoryCorrupt,
    SeatCode.SALES_CLOSED: SalesClosed,
}


def error_for(code: int, **fields: Any) -> InventoryError:
    """The typed error for a refusal code; unknown codes are a contract bug, not a refusal."""
    seat_code = SeatCode(code)
    if seat_code >= SeatCode.OK:
        raise ValueError(f"{seat_code.name} is not a refusal")
    return ERRORS[seat_code](**fields)
