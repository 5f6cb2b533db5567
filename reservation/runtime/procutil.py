"""Child-process plumbing: tie a server's life to ours, run it as another user, reap it.

Process-group choice: every server gets its own process group (``process_group=0``). A
terminal's Ctrl-C then reaches only our process, which drains its work (the persister's
last batch still needs Postgres) and stops the servers in order; had the servers shared
our group, they would begin shutting down at the same instant and the drain would fail.
The cost, a server outliving a parent that dies without cleaning up, is covered by the
parent-death signal set below.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

PR_SET_PDEATHSIG = 1
# The account the server binaries run under when we are root (Postgres refuses root).
UNPRIVILEGED_USER = "nobody"
# libpq reads these; a developer's PGHOST or PGSSLMODE must not redirect our own tools.
_SCRUBBED_ENV_PREFIXES = ("PG",)


@dataclass(frozen=True, slots=True)
class RunAs:
    """The account a child runs under; ``uid is None`` means "the current one"."""

    name: str
    uid: int | None = None
    gid: int | None = None

    @property
    def switches_user(self) -> bool:
        return self.uid is not None


def current_user() -> RunAs:
    return RunAs(name=pwd.getpwuid(os.geteuid()).pw_name)


def server_user() -> RunAs:
    """Ourselves, unless we are root: then the existing unprivileged ``nobody`` account."""
    if os.geteuid() != 0:
        return current_user()
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as exc:
        raise RuntimeError(
            f"running as root, but there is no {UNPRIVILEGED_USER!r} account to run "
            "Postgres under (Postgres refuses to run as root)"
        ) from exc
    return RunAs(name=UNPRIVILEGED_USER, uid=entry.pw_uid, gid=entry.pw_gid)


def child_env() -> dict[str, str]:
    """Our environment minus libpq's variables (we always pass host/port/user explicitly)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}


def _user_kwargs(run_as: RunAs) -> tuple[int | None, int | None, list[int] | None]:
    # extra_groups=[] matters: without it the child keeps root's supplementary groups
    # (setgroups is only called when extra_groups is given), e.g. group 0.
    if not run_as.switches_user:
        return None, None, None
    return run_as.uid, run_as.gid, []


@functools.cache
def _prctl() -> Callable[..., int]:
    # Resolved in the parent: the child after fork should do as little as possible.
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return cast(Callable[..., int], fn)


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel send ``sig`` to the child when we die.

    CPython runs ``preexec_fn`` after its setgid/setuid calls, which matters: Linux clears
    the parent-death signal whenever the credentials change, so it must be set after the
    switch to ``nobody``. It survives the exec (the binaries are not set-uid). The signal
    follows the *thread* that forked, hence ``spawn`` insists on the main thread.
    """
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # We may already have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            raise ChildProcessError("parent exited before the server started")

    return preexec


def spawn(
    argv: Sequence[str | Path],
    *,
    log: IO[bytes],
    run_as: RunAs,
    death_signal: signal.Signals,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running server in the foreground, output to ``log``, bound to our life."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "start servers from the main thread: the parent-death signal fires when the "
            "thread that started the child exits, not the process"
        )
    uid, gid, groups = _user_kwargs(run_as)
    return subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env() if env is None else dict(env),
        preexec_fn=_die_with_parent(death_signal),
        process_group=0,
        user=uid,
        group=gid,
        extra_groups=groups,
    )


def run(
    argv: Sequence[str | Path],
    *,
    run_as: RunAs,
    timeout: float,
    log: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command (initdb, a version probe) to completion, optionally as ``run_as``."""
    uid, gid, groups = _user_kwargs(run_as)
    out: IO[bytes] | int = subprocess.PIPE if log is None else log
    return subprocess.run(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=child_env(),
        timeout=timeout,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )


def can_run_as(run_as: RunAs, argv: Sequence[str | Path]) -> bool:
    """Whether ``run_as`` can execute ``argv`` (reach the binary and load its libraries)."""
    try:
        return run(argv, run_as=run_as, timeout=30).returncode == 0
    except OSError:  # EACCES on a folder on the way to the binary
        return False


def can_enter_as(run_as: RunAs, folder: Path) -> bool:
    """Whether ``run_as`` may traverse every folder down to and including ``folder``."""
    return can_run_as(run_as, ["/bin/sh", "-c", 'test -x "$1"', "sh", folder])


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def process_uid(pid: int) -> int:
    """The real uid of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise LookupError(f"no Uid line for pid {pid}")


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc: no CONFIG_PROC_CHILDREN needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if process_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if process_alive(p)]
    return alive


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> bool:
    """Send ``sig`` (if still running) and reap; False if it outlived ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def log_tail(path: Path, offset: int = 0, max_lines: int = 30) -> str:
    """The last lines a server wrote to its log since ``offset``, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-max_lines:]) or "(log empty)"


@contextlib.contextmanager
def throwaway_dir(prefix: str = "fairseat-") -> Iterator[Path]:
    """A fresh temporary folder for throwaway servers (tests, benchmarks, chaos runs),
    deleted afterwards.

    It is handed to the server user (a chown of a folder we just made; no permissions
    widened): a private 0700 temp folder would be unreachable for ``nobody``, and a root
    run would then keep Postgres data in a fallback folder that nothing deletes.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    user = server_user()
    if user.uid is not None and user.gid is not None:
        os.chown(folder, user.uid, user.gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
