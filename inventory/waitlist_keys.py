"""Redis keys of the waitlist and of freed places in cooling, on top of ``inventory.keys``.

Everything lives in the shard of the inventory unit it concerns, so each script stays in
one Cluster slot with the stock it guards:

- ``cooling`` (zset, per shard): piece id -> when its cooling ends (ms). A *piece* is one
  freed place held by the system: a slot place, or one seat on segments ``[a, b)``.
- ``coolp`` (hash, per shard): piece id -> its description (see ``parse_piece``).
- ``wl:<unit>`` (hash, per unit): one field per waitlist order waiting on the unit plus a
  generation ``gen`` that every change bumps. A unit is ``run:<run>:<class>`` (seats, in
  the run's shard) or ``res:<resource>:<day>`` (slots, in the resource's shard).
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.keys import Keys


def seat_unit(run_id: str, seat_class: str) -> str:
    return f"run:{run_id}:{seat_class}"


def slot_unit(resource_id: str, day: str) -> str:
    return f"res:{resource_id}:{day}"


@dataclass(frozen=True, slots=True)
class WaitlistKeys:
    keys: Keys

    def cooling(self, shard: int) -> str:
        return f"{self.keys.tag(shard)}:cooling"

    def pieces(self, shard: int) -> str:
        return f"{self.keys.tag(shard)}:coolp"

    def unit(self, shard: int, unit: str) -> str:
        return f"{self.keys.tag(shard)}:wl:{unit}"

    def unit_shard(self, unit: str) -> int:
        """A unit lives in the shard of its run (``run:<run>``) or resource (``res:<id>``),
        the shard of the stock it waits for."""
        kind, _, rest = unit.partition(":")
        if kind == "run":
            return self.keys.shard("run:" + rest.rsplit(":", 1)[0])
        if kind == "res":
            return self.keys.shard("res:" + rest.rsplit(":", 1)[0])
        raise ValueError(f"not a waitlist unit: {unit!r}")
