"""Fault injection: a lossy TCP proxy for Redis and the ``fairseat chaos`` harness."""
