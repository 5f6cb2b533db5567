"""`fairseat audit …` (being built)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, settings_from_args: Callable[[argparse.Namespace], Any]) -> None:
    """Adds no subcommand yet."""
