"""Which workflow owns a slot resource, from its id alone (no I/O).

Hospital and vaccination slots are generic slots underneath, but booking them must go
through their own workflows (department and day limits, suspension, the counter share;
eligibility, dose order, the series). The generic routes refuse them, and they must
decide cheaply: the slot's live meta already carries the resource id, so the owner is
written into that id at publish time, as a prefix. Generic ids are ``r`` + 16 hex digits,
so ``rh`` and ``rv`` can never be generic ids (``h`` and ``v`` are not hex digits).
"""

from __future__ import annotations

from typing import Literal

Domain = Literal["hospital", "vaccine", "generic"]

HOSPITAL_RESOURCE_PREFIX = "rh"
VACCINE_RESOURCE_PREFIX = "rv"


def domain_from_id(resource_id: str) -> Domain | None:
    """The owner when the id says so; None for an id without a domain prefix (a generic
    resource, or a vaccination resource published before the prefix existed)."""
    if resource_id.startswith(HOSPITAL_RESOURCE_PREFIX):
        return "hospital"
    if resource_id.startswith(VACCINE_RESOURCE_PREFIX):
        return "vaccine"
    return None
