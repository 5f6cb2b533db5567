"""Embedded Postgres and Redis-compatible servers, run as supervised child processes."""
