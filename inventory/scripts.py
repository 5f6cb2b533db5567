"""Loads the Lua scripts shipped as package data and registers them on a client.

Registration computes each script's SHA1 up front; redis-py's ``Script`` objects then call
EVALSHA and transparently reload on NOSCRIPT (after a restart or a failover).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

_HEADER = re.compile(r"\A--\[\[.*?KEYS.*?ARGV.*?Returns.*?\]\]", re.S)


class ScriptRunner(Protocol):
    async def __call__(
        self, keys: list[str] | None = None, args: list[Any] | None = None, client: Any = None
    ) -> Any: ...


@cache
def script_source(name: str) -> str:
    """The text of ``inventory/lua/<name>.lua``; its contract header is mandatory."""
    text = resources.files("inventory").joinpath("lua", f"{name}.lua").read_text("utf-8")
    if not _HEADER.match(text):
        raise ValueError(f"{name}.lua lacks its contract header (--[[ KEYS / ARGV / Returns ]])")
    return text


def available_scripts() -> list[str]:
    folder = resources.files("inventory").joinpath("lua")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".lua"))


@dataclass(frozen=True)
class Registered:
    """Every script, registered once on one client."""

    scripts: dict[str, ScriptRunner]

    def __getitem__(self, name: str) -> ScriptRunner:
        return self.scripts[name]


def register_all(client: Any) -> Registered:
    return Registered(
        {name: client.register_script(script_source(name)) for name in available_scripts()}
    )
