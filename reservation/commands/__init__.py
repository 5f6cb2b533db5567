"""Subcommand groups of the ``fairseat`` CLI, one module each.

Each module exposes ``register(sub, settings_from_args)``: it adds its subparsers to
``sub`` and sets ``func`` on them; ``settings_from_args(args)`` gives the Settings with
the command line's overrides applied.
"""

COMMAND_MODULES = (
    "reservation.commands.timetable",
    "reservation.commands.inventory",
    "reservation.commands.chaos",
    "reservation.commands.load",
    "reservation.commands.audit",
)
