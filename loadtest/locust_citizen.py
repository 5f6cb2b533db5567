"""What every locust profile's citizen does the same way: register, POST with the server's
``Retry-After`` honoured, and pay for a hold just made."""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser

from loadtest.scenarios import Tally, registration_body

# ID numbers of the run's citizens: a counter, salted per process so that two runs on
# one database, or the processes of one distributed run (locust --processes forks after
# importing this), do not collide.
_numbers = itertools.count()
_salt = 0


def _new_salt() -> None:
    global _numbers, _salt
    _numbers = itertools.count()
    _salt = secrets.randbelow(10_000_000)


_new_salt()
os.register_at_fork(after_in_child=_new_salt)


class Citizen(FastHttpUser):
    abstract = True  # a profile subclasses it
    tally: Tally  # the profile's outcome counts (its summary)
    auth: dict[str, str]

    def register(self) -> bool:
        """A new citizen; False (and the user stops) if the service refused."""
        for attempt in range(3):
            with self.client.post(
                "/v1/citizens",
                json=registration_body(next(_numbers), _salt + attempt * 7_777),
                name="/v1/citizens",
                catch_response=True,
            ) as resp:
                if resp.status_code == 201:
                    self.auth = {"Authorization": f"Bearer {resp.json()['token']}"}
                    return True
                if resp.status_code == 409 and attempt < 2:
                    # Somebody (an earlier run) has this ID number or phone: another one.
                    resp.success()
                    self.tally.add("registered again (409)")
                    continue
                resp.failure(f"register {resp.status_code}")
                break
        self.stop()
        return False

    def post(self, path: str, name: str, headers: dict[str, str], body: Any = None) -> Any:
        """POST with Retry-After honoured for 429/503 (same headers: same key)."""
        for attempt in range(4):
            with self.client.post(
                path, json=body, headers=headers, name=name, catch_response=True
            ) as resp:
                if resp.status_code in (429, 503) and attempt < 3:
                    resp.success()  # retried below; the final answer is what counts
                    self.tally.add(f"retried {resp.status_code}")
                    time.sleep(min(float(resp.headers.get("Retry-After") or 1), 5.0))
                    continue
                if resp.status_code in (200, 201, 409):
                    resp.success()  # 409 is an answer (sold out, not released), not a fault
                return resp
        return None  # pragma: no cover

    def pay_for(self, held: Any, confirm_path: Callable[[str], str]) -> str | None:
        """After a hold's answer: a refusal is tallied; a hold is paid for at once. The hold
        id if it was confirmed."""
        if held is None or held.status_code not in (200, 201):
            code = held.json().get("code", held.status_code) if held is not None else "none"
            self.tally.add(f"hold {code}")
            return None
        hold_id: str = held.json()["id"]
        # Named by its route ("/v1/orders/[id]/pay", ...), one row in locust's table.
        paid = self.post(confirm_path(hold_id), confirm_path("[id]"), self.auth)
        if paid is not None and paid.status_code == 200:
            self.tally.add("confirmed")
            return hold_id
        self.tally.add(f"confirm {paid.status_code if paid is not None else 'none'}")
        return None
