"""Redis keys of the seat inventory, on top of :class:`inventory.keys.Keys`.

A train run is one logical shard (``Keys.shard("run:" + run_id)``): every class of the run,
its passenger index, its holds and the shard's outbox and deadline index share one hash tag,
so each script call stays in one Cluster slot. Hold ids start with their shard number, so a
hold's keys follow from its id alone.

Layout of one inventory unit (a run and a seat class), and why:
- ``seats`` (hash ordinal -> "<pattern>|<tail>"): each seat's occupancy pattern, needed to
  release it; the tail is static (ordinal, coach, row, letter, position).
- ``bypat`` (zset, all scores 0, read by lex): the pattern *buckets* in one key, because
  scripts may not invent keys: ``[<pattern>|`` .. ``(<pattern>}`` is one bucket, in seat
  order, so its first seats are neighbours (adjacency) and picking one is O(log n).
- ``pcount`` (hash pattern -> seats): tells when a bucket appears or empties, and is the
  source of 余票: every trip's count is a 2-D suffix sum over the seats per free gap,
  which the reader derives from the patterns (:meth:`SeatEngine.remaining`). It also
  holds ``HASHTABLE_FIELD`` (below), which keeps it a hashtable: Valkey keeps a hash of
  up to 512 short fields as a listpack, scanned field by field, and a hold's HINCRBYs on
  a fragmented map's hundreds of patterns were ~7 % of a seat script's server
  instructions (callgrind).
- ``gapidx`` (zset, lex): for each free gap ``(g0, g1)``, the patterns having it, busiest
  first. A trip fits exactly the patterns listed under a gap that contains it, so a hold
  looks at gaps (at most nseg²/2), never at seats or at every pattern.
- ``gaps`` (string, a byte per gap): 0 if no seat has that gap, else 1 + the busiest
  pattern's sold-segment count: the best-fit ranking of candidate gaps without a call each.
- No per-gap seat counts are stored: keeping them cost every hold and release 1-3 more
  writes (~9 % of a seat script's server instructions), while the 余票 reader gets them
  from ``pcount`` in one read (a pattern's gaps are computed once per process).
- ``meta`` (hash): nseg, seat count, map fingerprint, run and class.
Per run: ``pax`` (hash passenger -> live hold id), one ticket per person per run.
Per shard (shared with slot holds): ``Keys.hold`` records (a seat hold's fixed fields are
packed in one, :mod:`inventory.hold_record`), ``Keys.hold_deadlines``, ``Keys.outbox``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from inventory.keys import Keys

# Written into ``pcount`` at publish (seat_load.lua) and rebuild: a value longer
# than hash-max-listpack-value (64 bytes by default) makes Redis store the hash as a
# hashtable for good (O(1) field lookups). Not a pattern or a gap; readers skip it.
HASHTABLE_FIELD = "~"
HASHTABLE_VALUE = "keeps this hash a hashtable, for O(1) field lookups (inventory/seat_keys.py)"


@dataclass(frozen=True, slots=True)
class SeatUnitKeys:
    """Keys of one inventory unit, a (run, seat class), in the order the scripts take them."""

    shard: int
    meta: str  # hash: nseg, nseats, fp, run, cls
    seats: str  # hash: ordinal -> "<pattern>|<tail>"
    bypat: str  # zset (lex): "<pattern>|<tail>": seats grouped by pattern, then ordinal
    pcount: str  # hash: pattern -> seats with it
    gapidx: str  # zset (lex): "<g0><g1>|<popcount>|<pattern>"
    gaps: str  # string: one byte per gap, 0 = none, else 1 + top popcount among its patterns
    pax: str  # hash (per run, not per class): passenger -> live hold id
    deadlines: str
    outbox: str
    epoch: str  # the shard's epoch marker, the last key of every guarded script
    # KEYS[1..7] of seat_hold and seat_release (seat_load takes the first six), made once
    # per unit: they are on every hold's and release's path.
    inventory: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeatKeys:
    keys: Keys

    def run_shard(self, run_id: str) -> int:
        return self.keys.shard("run:" + run_id)

    def unit(self, run_id: str, seat_class: str) -> SeatUnitKeys:
        shard = self.run_shard(run_id)
        base = f"{self.keys.tag(shard)}:seat:{run_id}"
        unit = f"{base}:{seat_class}"
        meta, seats, bypat = f"{unit}:meta", f"{unit}:seats", f"{unit}:bypat"
        pcount, gapidx, gaps = f"{unit}:pcount", f"{unit}:gapidx", f"{unit}:gaps"
        pax = f"{base}:pax"
        return SeatUnitKeys(
            shard=shard,
            meta=meta,
            seats=seats,
            bypat=bypat,
            pcount=pcount,
            gapidx=gapidx,
            gaps=gaps,
            pax=pax,
            deadlines=self.keys.hold_deadlines(shard),
            outbox=self.keys.outbox(shard),
            epoch=self.keys.epoch(shard),
            inventory=(meta, seats, bypat, pcount, gapidx, gaps, pax),
        )

    def hold_id(self, run_id: str, account_id: str, idempotency_key: str) -> str:
        """The id of the hold a request makes: ``"<shard:03d>-<32 hex>"``, the same for every
        retry of that request, so the hold record is also its idempotency record (one read
        answers "seen before?", and the answer lives as long as the hold). It is a digest of
        the account and the client's key: nobody else's request can map to it, and every
        operation on a hold checks its owner anyway."""
        digest = hashlib.sha256(f"{account_id}\n{idempotency_key}".encode()).hexdigest()
        return f"{self.run_shard(run_id):03d}-{digest[:32]}"

    def hold_shard(self, hold_id: str) -> int:
        head, sep, rest = hold_id.partition("-")
        if not (sep and head.isdigit() and rest) or int(head) >= self.keys.shard_count:
            raise ValueError(f"not a seat hold id: {hold_id!r}")
        return int(head)

    def hold(self, hold_id: str) -> str:
        return self.keys.hold(self.hold_shard(hold_id), hold_id)
