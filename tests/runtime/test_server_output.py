"""The tests' server-output reader: a chatty server never blocks on a full pipe, and a
silent one cannot hang the wait."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.server_output import ServerOutput


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_output_past_a_pipe_full_is_read_while_the_test_waits() -> None:
    # 1 MiB before the line waited for: 16 pipes' worth, which blocks an unread writer.
    proc = _python(
        "for _ in range(1024): print('x' * 1023)\n"
        "print('ready', flush=True)\n"
        "for _ in range(1024): print('y' * 1023)\n"
        "print('done', flush=True)"
    )
    output = ServerOutput(proc)
    try:
        assert output.wait_for("ready", timeout=30)
        assert output.wait_for("done", timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        output.close()
    assert len(output.lines) == 2 * 1024 + 2


def test_a_silent_server_times_out_and_an_ended_one_answers_at_once() -> None:
    silent = _python("import time; time.sleep(60)")
    output = ServerOutput(silent)
    started = time.monotonic()
    try:
        assert not output.wait_for("ready", timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        silent.kill()
        silent.wait()
        output.close()
    ended = _python("print('bye')")
    output = ServerOutput(ended)
    started = time.monotonic()
    assert not output.wait_for("ready", timeout=30)
    assert time.monotonic() - started < 10
    ended.wait()
    output.close()
    assert output.text() == "bye\n"
