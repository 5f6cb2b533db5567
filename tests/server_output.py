"""``fairseat serve`` started by a test (``start_serve``), its merged output read in a thread.

A server whose stdout pipe nobody reads blocks on its next write once the pipe is full
(64 KiB): its workers stall mid-request and the persister stops, and the test then fails
far from the cause. So the output is read from start to end, and a test waits for a line
with a timeout that holds even when the server prints nothing at all.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping

import pytest


class ServerOutput:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None, "start the server with stdout=subprocess.PIPE"
        self.lines: list[str] = []
        self._stream = proc.stdout
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        except ValueError:  # closed under us: the test is done with it
            pass
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once a line containing ``text`` was printed; False if the output ended or
        ``timeout`` seconds passed first."""

        def printed() -> bool:
            return any(text in line for line in self.lines)

        with self._changed:
            self._changed.wait_for(lambda: self._ended or printed(), timeout)
            return printed()

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def close(self, timeout: float = 10.0) -> None:
        """After the process ended: the rest of its output is read, then the pipe closed."""
        self._reader.join(timeout)
        self._stream.close()


def start_serve(
    env: Mapping[str, str], *, ready_within: float
) -> tuple[subprocess.Popen[str], ServerOutput]:
    """``fairseat serve`` with ``env``, once it printed that it is ready (else the test
    fails with its output)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reservation.cli", "serve"],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ServerOutput(proc)
    if not output.wait_for("fairseat is ready", timeout=ready_within):
        proc.kill()
        proc.wait()
        output.close()
        pytest.fail("fairseat serve did not become ready:\n" + output.text())
    return proc, output
