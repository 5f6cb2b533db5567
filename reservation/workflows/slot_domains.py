"""The generic slot routes refuse hospital and vaccination slots (issues 5 and 6).

``POST /v1/bookings`` and ``POST /v1/waitlist/slots`` know nothing of the hospital's
department and day limits, suspension and counter share, nor of vaccine eligibility,
dose order and series: a slot of those domains obtained there would be a back door. The
owner is read from the resource id's prefix (``reservation.domain.slot_domains``), so the
check costs no lookup on the hot path. Vaccination resources published before the
``rv`` prefix existed keep their ids; for ids without a prefix the owner is read once from
Postgres and cached per process (a resource never changes owner).
"""

from __future__ import annotations

from typing import Any

from reservation.domain.slot_domains import Domain, domain_from_id
from reservation.errors import FairseatError
from reservation.services import Services


class UseHospitalRoute(FairseatError):
    code = "use_hospital_route"
    http_status = 409
    default_message = (
        "This is a hospital slot: register with POST /v1/hospital/registrations "
        "(or wait with POST /v1/hospital/standby)."
    )


class UseVaccineRoute(FairseatError):
    code = "use_vaccine_route"
    http_status = 409
    default_message = (
        "This is a vaccination slot: book with POST /v1/vaccine/bookings "
        "(or wait with POST /v1/vaccine/waitlist)."
    )


# A vaccination resource published by the vaccine workflow (a site's product line), over
# ``resources r JOIN providers p``. The generic demo's "flu-line" is not one (no product).
LEGACY_VACCINE_EXPR = (
    "r.kind = 'vaccination' AND p.kind = 'vaccination'"
    " AND EXISTS (SELECT 1 FROM vaccine_products vp WHERE vp.code = r.code)"
)
LEGACY_SQL = (
    "SELECT " + LEGACY_VACCINE_EXPR + " FROM resources r"
    " JOIN providers p ON p.id = r.provider_id WHERE r.id = $1"
)


class ResourceDomains:
    """resource id -> owner, for ids without a domain prefix (bounded cache)."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self._known: dict[str, Domain] = {}

    async def domain_of(self, services: Services, resource_id: str) -> Domain:
        found = domain_from_id(resource_id)
        if found is not None:
            return found
        cached = self._known.get(resource_id)
        if cached is not None:
            return cached
        async with services.pool.acquire() as conn:
            legacy_vaccine = await conn.fetchval(LEGACY_SQL, resource_id)
        domain: Domain = "vaccine" if legacy_vaccine else "generic"
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        self._known[resource_id] = domain
        return domain


def refusal_for(domain: Domain, **fields: Any) -> FairseatError | None:
    if domain == "hospital":
        return UseHospitalRoute(**fields)
    if domain == "vaccine":
        return UseVaccineRoute(**fields)
    return None


async def refuse_domain_slot(services: Services, domains: ResourceDomains, slot_id: str) -> None:
    """Raise 409 ``use_hospital_route`` / ``use_vaccine_route`` for such a slot."""
    meta = await services.slots.slot_meta(slot_id)  # cached per process: no round trip
    refusal = refusal_for(await domains.domain_of(services, meta.resource_id), slot_id=slot_id)
    if refusal is not None:
        raise refusal
