"""Which epoch a Postgres write that records a Redis change is fenced with.

A request changes Redis (hold, confirm, cancel...), then commits what it did in Postgres.
If a rebuild reads Postgres between the two, and Redis had lost the change, the commit
lands in Postgres while the rebuilt Redis knows nothing of it: a confirmed booking whose
place Redis sells again. So such commits are fenced (``store.inventory_state.fence``):
they go through only if the epoch is still the one read *before* the Redis change.

Reading it before is what makes the fence sound: the change ran under that epoch or a
later one, so "still that epoch at commit" means no rebuild started in between. When the
process's cached epoch moves during the request (a rebuild just finished), the commit is
refused though it was safe; the errors middleware then runs the request once more with the
fresh epoch (``api.middleware._run``), and its Redis step replays against the rebuilt
inventory. Only a second refusal reaches the client, as 503 ``sales_closed``.
"""

from __future__ import annotations

from reservation.services import Services


async def write_epoch(services: Services, *, reload: bool = False) -> str:
    """The process's current epoch ('' when it runs unguarded: tools and some tests).

    The cached one, loaded first only if this process never loaded it (or ``reload``, for
    the persister, which makes no script call of its own that would reload it). Requests
    leave reloading to their script call: after a Redis restart, the restart is noticed
    by a reload that follows the request's first Redis command (see ``epoch.py``)."""
    guard = services.slots.guard
    if guard is None:
        return ""
    if reload or guard.state.epoch == 0:
        await guard.expected()
    return str(guard.state.epoch)
