"""Loads the Lua scripts shipped as package data and registers them on a client.

Registration computes each script's SHA1 up front; redis-py's ``Script`` objects then call
EVALSHA and transparently reload on NOSCRIPT (after a restart or a failover).

Redis runs each script as one self-contained text, so code several scripts share lives in
``lua/include/<name>.lua`` and a script names it on a line of its own, ``-- include:
<name>``; the loader pastes the fragment (without its comment header) there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

_HEADER = re.compile(r"\A--\[\[.*?KEYS.*?ARGV.*?Returns.*?\]\]", re.S)
_INCLUDE = re.compile(r"^-- include: ([a-z_]+)\n", re.M)
_FRAGMENT_HEADER = re.compile(r"\A--\[\[.*?\]\]\n", re.S)


class ScriptRunner(Protocol):
    async def __call__(
        self, keys: list[str] | None = None, args: list[Any] | None = None, client: Any = None
    ) -> Any: ...


@cache
def script_source(name: str) -> str:
    """The text of ``inventory/lua/<name>.lua``, its includes pasted in; its contract
    header is mandatory."""
    text = resources.files("inventory").joinpath("lua", f"{name}.lua").read_text("utf-8")
    if not _HEADER.match(text):
        raise ValueError(f"{name}.lua lacks its contract header (--[[ KEYS / ARGV / Returns ]])")
    return _INCLUDE.sub(lambda m: include_source(m.group(1)), text)


@cache
def include_source(name: str) -> str:
    """The code of ``inventory/lua/include/<name>.lua``, without its comment header."""
    text = resources.files("inventory").joinpath("lua", "include", f"{name}.lua").read_text("utf-8")
    header = _FRAGMENT_HEADER.match(text)
    if header is None:
        raise ValueError(f"include/{name}.lua lacks its comment header (--[[ ... ]])")
    return text[header.end() :]


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
