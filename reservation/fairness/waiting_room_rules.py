"""Pure rules of the waiting room: what a sale is, the seed derivation, the honest
estimates a waiting citizen sees, and the client address behind trusted proxies.

No I/O, no clock: time arrives as milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

SALE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SEED_LABEL = b"fairseat/lottery-seed/1"
JOIN_LABEL = b"fairseat/join-id/1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Sale:
    """A queued sale: one release of inventory whose buyers go through the waiting room.

    ``kind`` ``slots``: the provider's slots released at ``release_ms`` (hospital 07:00
    releases, vaccine campaign openings); ``train``: every train trip boarding on
    ``train_date``, released at the daily release time. From its creation until
    ``ends_ms`` a hold in its scope needs a queue token.
    """

    sale_id: str
    kind: str  # "slots" | "train"
    provider_id: str | None
    train_date: str | None  # ISO date
    release_ms: int
    window_ends_ms: int
    ends_ms: int
    admit_factor: int  # admitted-but-unused <= admit_factor * remaining stock
    admission_ttl_ms: int
    stock: int
    commitment: str
    seed_hex: str | None  # revealed after the draw
    window_count: int | None
    sold_out_notified: bool
    slot_ids: tuple[str, ...] = ()

    @property
    def drawn(self) -> bool:
        return self.seed_hex is not None

    def queued_at(self, now_ms: int) -> bool:
        """Whether a hold in this sale's scope needs a queue token at ``now_ms``."""
        return now_ms < self.ends_ms


def derive_seed(secret: bytes, sale_id: str, salt: bytes) -> bytes:
    """The sale's 32-byte draw seed. Derived, never stored: the database holds only the
    salt, so reading it before the reveal does not tell the draw."""
    return hmac.new(
        secret, SEED_LABEL + b"|" + sale_id.encode() + b"|" + salt, hashlib.sha256
    ).digest()


def join_id_key(secret: bytes) -> bytes:
    """The key of ``lottery.join_id`` (its own label: never a token or seed key)."""
    return hmac.new(secret, JOIN_LABEL, hashlib.sha256).digest()


# Estimates shown to a waiting citizen ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Estimate:
    ahead: int  # people in front of you who may still take a place
    chance: float | None  # 0..1; None before the draw
    wait_s: int | None  # None: no admission has finished yet, so no rate to go by


def estimate(
    *,
    state: str,
    position: int,
    admitted_upto: int,
    live_admissions: int,
    remaining: int,
    served: int,
    lapsed: int,
    elapsed_ms: int,
) -> Estimate:
    """Honest, simple figures (docs/fairness.md, "What a waiting citizen sees").

    - ahead: admitted people still holding an unused admission, plus everyone between the
      last admitted position and yours;
    - chance: with ``c`` the share of finished admissions that took a place so far (1 until
      there is data), the people ahead are expected to take ``ahead * c`` places; if that
      leaves one for you, 1, else ``remaining / (ahead * c + 1)``;
    - wait: positions still to be admitted before you, divided by the rate at which
      admissions have finished (taken or lapsed) since the draw.
    """
    if state in ("done",):
        return Estimate(0, 1.0, 0)
    if state in ("sold_out", "lapsed", "over") or remaining <= 0:
        return Estimate(0, 0.0, None)
    if state == "admitted":
        return Estimate(0, 1.0 if live_admissions <= remaining else remaining / live_admissions, 0)
    if state == "draw_pending":
        return Estimate(0, None, None)  # nobody's place is known before the draw
    ahead = live_admissions + max(0, position - 1 - admitted_upto)
    finished = served + lapsed
    conversion = served / finished if finished else 1.0
    expected = ahead * conversion
    chance = 1.0 if expected + 1 <= remaining else remaining / (expected + 1)
    wait_s: int | None = None
    if finished and elapsed_ms > 0:
        rate = finished / (elapsed_ms / 1000)
        wait_s = int(max(0, position - admitted_upto) / rate + 0.999)
    return Estimate(ahead, round(min(1.0, max(0.0, chance)), 3), wait_s)


# Client address ---------------------------------------------------------------------------
def parse_networks(items: Sequence[str]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "::1"]`` -> networks; ValueError on a malformed entry."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in nets)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str:
    """The address a request is counted against.

    The TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is read
    from the right (each proxy appends the address it saw), skipping trusted proxies, and
    the first address not trusted is the client. Entries left of it are whatever the
    client sent and are never believed. "" when nothing usable is known.
    """
    address = _ip(peer or "")
    if address is None:
        return ""
    if not (forwarded_for and _within(address, trusted_proxies)):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        candidate = _ip(hop)
        if candidate is None:
            break  # garbage from outside our proxies: stop at the last hop we trust
        address = candidate
        if not _within(candidate, trusted_proxies):
            break
    return str(address)


def exempt(address: str, nets: Sequence[Network]) -> bool:
    """Addresses whose traffic is many people's (loopback by default: a local proxy that is
    not declared trusted) are not limited per address; accounts and IDs still are."""
    ip = _ip(address)
    return ip is None or _within(ip, nets)
