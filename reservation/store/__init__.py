"""Postgres, the system of record: migrations and repositories."""
