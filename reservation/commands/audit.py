"""`fairseat audit verify`, `fairseat audit export SUBJECT`, `fairseat audit check FILE`.

``verify`` and ``export`` use the servers of a running ``fairseat serve`` on the same data
folder, or start embedded ones (see ``reservation.runtime.serve.backends``), and apply
migrations first. ``check`` needs no server: it is what the public runs on an export.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from reservation.settings import Settings

T = TypeVar("T")

EXPORT_FORMAT = "fairseat-audit-export/1"


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    group = sub.add_parser("audit", help="the hash-chained audit log: verify, export, check")
    commands = group.add_subparsers(dest="audit_command", required=True)

    verify = commands.add_parser(
        "verify", help="check the whole chain; exit 1 and name the first broken link"
    )
    verify.add_argument("--data-dir")
    verify.set_defaults(func=lambda args: _verify(settings_from_args(args)))

    export = commands.add_parser(
        "export", help="one subject's (e.g. a sale's) entries as JSON, for the public"
    )
    export.add_argument("subject")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    export.add_argument("--data-dir")
    export.set_defaults(
        func=lambda args: _export(settings_from_args(args), args.subject, args.output)
    )

    check = commands.add_parser(
        "check", help="verify an exported file offline (no server needed); exit 1 if broken"
    )
    check.add_argument("file", type=Path)
    check.set_defaults(func=lambda args: _check(args.file))


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    import asyncpg

    from reservation.runtime.serve import backends, dev_secrets
    from reservation.store.migrate import apply_migrations

    settings = dev_secrets(settings)

    async def main(dsn: str) -> T:
        await apply_migrations(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    with backends(settings) as ready:
        assert ready.database_url is not None
        return asyncio.run(main(ready.database_url))


def _verify(settings: Settings) -> int:
    from reservation.fairness import audit

    result = _run(settings, audit.verify)
    if result.ok:
        head = f"head {result.head_seq} {result.head_hash}" if result.checked else "empty log"
        print(f"ok: {result.checked} entries, {head}")
        return 0
    print(f"BROKEN at seq {result.first_broken_seq}: {result.reason}")
    print(f"  {result.checked} entries before it verified")
    return 1


def export_document(subject: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    from reservation.fairness.audit import RULE

    return {"format": EXPORT_FORMAT, "rule": RULE, "subject": subject, "entries": entries}


def _export(settings: Settings, subject: str, output: Path | None) -> int:
    from reservation.fairness import audit

    async def work(conn: Any) -> list[dict[str, Any]]:
        return await audit.export(conn, subject)

    text = json.dumps(export_document(subject, _run(settings, work)), ensure_ascii=False, indent=1)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


def _check(path: Path) -> int:
    from reservation.fairness.audit import verify_entries

    document = json.loads(path.read_text(encoding="utf-8"))
    entries = document.get("entries") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        print(f"{path}: not an audit export")
        return 1
    subject = document.get("subject") if isinstance(document, dict) else None
    strangers = [
        e.get("seq") if isinstance(e, dict) else e
        for e in entries
        if subject and not (isinstance(e, dict) and e.get("subject") == subject)
    ]
    if strangers:
        print(f"BROKEN: entries {strangers} are not about {subject!r}")
        return 1
    result = verify_entries(entries)
    if result.ok:
        head = f"head {result.head_seq} {result.head_hash}"
        print(f"ok: {result.checked} entries of {subject!r}, {head}")
        return 0
    print(f"BROKEN at seq {result.first_broken_seq}: {result.reason}")
    return 1
