"""Dead letters: outbox entries the persister gave up on, listed and replayed by operators.

A replay writes the entry under its **original** event id (``<shard>:<entry id>``), with
the same idempotent statements as the persister, so replaying twice, or replaying an entry
that did reach Postgres after all, changes nothing. A replayed entry leaves the dead-letter
stream only after its transaction committed; one that still fails stays, with its error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reservation.services import Services
from reservation.workers.persister import Entry, Persister

_META = ("_entry", "_reason")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    shard: int
    dead_id: str
    entry_id: str
    reason: str
    fields: dict[str, str]

    def entry(self) -> Entry:
        return Entry(self.shard, self.entry_id, self.fields)


@dataclass
class ReplayReport:
    replayed: int = 0
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)


async def list_dead_letters(services: Services, limit_per_shard: int = 1000) -> list[DeadLetter]:
    keys = services.keys
    shards = list(range(keys.shard_count))
    async with services.redis.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.xrange(keys.dead_letters(shard), count=limit_per_shard)
        replies = await pipe.execute()
    letters: list[DeadLetter] = []
    for shard, items in zip(shards, replies, strict=True):
        for dead_id, raw in items:
            fields = {k: v for k, v in raw.items() if k not in _META}
            letters.append(
                DeadLetter(
                    shard, dead_id, raw.get("_entry", dead_id), raw.get("_reason", ""), fields
                )
            )
    return letters


async def replay_dead_letters(services: Services) -> ReplayReport:
    report = ReplayReport()
    # Unfenced: an operator's replay of entries Redis kept (write_entry reads no stream).
    writer = Persister(services, consumer="dead-letter-replay", shards=[], fenced=False)
    for letter in await list_dead_letters(services):
        try:
            await writer.write_entry(letter.entry())
        except Exception as exc:
            report.failed.append((letter, repr(exc)))
            continue
        await services.redis.xdel(services.keys.dead_letters(letter.shard), letter.dead_id)
        report.replayed += 1
    return report
