"""``fairseat serve`` on a bare machine: embedded servers, ready within 30 s, a booking
made through the API lands in Postgres, and every process is gone after SIGTERM (or after
the supervisor is SIGKILLed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientSession

from reservation.runtime.ports import free_port
from tests.helpers import make_id_number, make_phone
from tests.server_output import ServerOutput, start_serve


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field; the 2nd, the command, may contain spaces.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


class Served:
    def __init__(
        self,
        proc: subprocess.Popen[str],
        output: ServerOutput,
        url: str,
        data_dir: Path,
        ready_after: float,
    ) -> None:
        self.proc, self.output, self.url, self.data_dir = proc, output, url, data_dir
        self.ready_after = ready_after
        self.runtime: dict[str, Any] = json.loads((data_dir / "runtime.json").read_text())

    @property
    def lines(self) -> list[str]:
        return self.output.lines


def _start(data_dir: Path, port: int) -> Served:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        FAIRSEAT_DATA_DIR=str(data_dir),
        FAIRSEAT_PORT=str(port),
        FAIRSEAT_WORKERS="2",
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    proc, output = start_serve(env, ready_within=60)
    url = f"http://127.0.0.1:{port}"
    return Served(proc, output, url, data_dir, time.monotonic() - started)


@pytest.fixture
def served(server_dir: Path) -> Iterator[Served]:
    s = _start(server_dir / "data", free_port())
    yield s
    _close(s)


def _close(s: Served) -> None:
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()
    s.output.close()


@pytest.mark.timeout(180)
async def test_serve_embedded_books_into_postgres_and_stops_cleanly(served: Served) -> None:
    assert served.ready_after < 30, served.ready_after
    assert any(served.url in line for line in served.lines)
    creds = json.loads((served.data_dir / "demo-credentials.json").read_text())
    assert creds  # demo data was seeded on first start

    async with ClientSession() as http:
        async with http.get(served.url + "/readyz") as resp:
            assert resp.status == 200
        async with http.post(
            served.url + "/v1/citizens",
            json={"name": "赵六", "phone": make_phone(), "id_number": make_id_number()},
        ) as resp:
            assert resp.status == 201
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.get(served.url + "/v1/slots", params={"provider_id": "pumch"}) as resp:
            slots = (await resp.json())["slots"]
        assert slots and all(s["available"] == s["capacity"] for s in slots)
        async with http.post(
            served.url + "/v1/bookings", json={"slot_id": slots[0]["id"]}, headers=auth
        ) as resp:
            assert resp.status == 201, await resp.text()
            booking_id = (await resp.json())["id"]
        async with http.post(
            served.url + f"/v1/bookings/{booking_id}/confirm", headers=auth
        ) as resp:
            assert resp.status == 200, await resp.text()
        # Two workers share the port; /metrics must report both, whichever answers.
        for _ in range(4):
            async with http.get(served.url + "/metrics") as resp:
                text = await resp.text()
            assert 'fairseat_holds_total{kind="slot",outcome="held"} 1.0' in text
            assert 'fairseat_confirms_total{kind="slot",outcome="confirmed"} 1.0' in text

    conn = await asyncpg.connect(served.runtime["database_url"])
    try:
        state = await conn.fetchval("SELECT state FROM bookings WHERE id = $1", booking_id)
        assert state == "confirmed"
        # The background persister also writes the outbox events (held, confirmed).
        deadline = time.monotonic() + 10
        events: list[str] = []
        while time.monotonic() < deadline and len(events) < 2:
            events = [
                r["type"]
                for r in await conn.fetch(
                    "SELECT type FROM inventory_events WHERE hold_id = $1 ORDER BY at", booking_id
                )
            ]
            time.sleep(0.1)
        assert sorted(events) == ["confirmed", "held"]
    finally:
        await conn.close()

    server_pids = [served.runtime["postgres_pid"], served.runtime["redis_pid"]]
    # Two HTTP workers at the supervisor's niceness; the background process 10 nicer.
    children = Path(f"/proc/{served.proc.pid}/task/{served.proc.pid}/children").read_text()
    nices = sorted(_nice(int(p)) for p in children.split() if int(p) not in server_pids)
    base = _nice(served.proc.pid)
    assert nices == [base, base, min(base + 10, 19)]
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) == 0
    assert _wait_gone(server_pids) == []
    assert not (served.data_dir / "runtime.json").exists()


@pytest.mark.timeout(180)
def test_servers_die_with_a_killed_supervisor(served: Served) -> None:
    """The servers, the HTTP workers and the background process: nothing outlives it
    (HTTP workers once did, still listening, when the kill came while one was starting)."""
    pids = [served.runtime["postgres_pid"], served.runtime["redis_pid"]]
    children = Path(f"/proc/{served.proc.pid}/task/{served.proc.pid}/children").read_text()
    workers = [int(p) for p in children.split() if int(p) not in pids]
    assert len(workers) == 3  # two HTTP workers and the background process
    assert all(_alive(p) for p in pids + workers)
    served.proc.kill()
    served.proc.wait()
    assert _wait_gone(pids + workers) == []


def test_a_worker_whose_parent_is_gone_exits_at_once() -> None:
    """The fork/prctl race: a worker whose parent died before it asked for the parent-death
    signal would never get one; it must notice and exit instead of serving on."""
    script = (
        "from reservation.runtime.serve import die_with_parent\n"
        "die_with_parent(parent=1)\n"  # not our parent: as if it had died already
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (1, "")


@pytest.mark.timeout(240)
def test_restart_keeps_data_and_does_not_reseed(server_dir: Path) -> None:
    data_dir = server_dir / "data"
    first = _start(data_dir, free_port())
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(timeout=60) == 0
    _close(first)
    second = _start(data_dir, free_port())
    try:
        assert not any("Demo data seeded" in line for line in second.lines)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=60) == 0
    finally:
        _close(second)
