"""Prometheus metrics on a private registry (no globals: one ``Metrics`` per app/worker).

When several worker processes serve one port, ``prometheus_client``'s multiprocess mode
aggregates their samples (``fairseat serve`` sets it up; see reservation.runtime.serve).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "fairseat_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "fairseat_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.holds = Counter(
            "fairseat_holds_total", "Hold attempts by outcome", ["kind", "outcome"], registry=r
        )
        self.confirms = Counter(
            "fairseat_confirms_total",
            "Confirm attempts by outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.cancels = Counter(
            "fairseat_cancels_total",
            "Cancellations and expiries by outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.persisted = Counter(
            "fairseat_persister_events_total", "Outbox events written to Postgres", registry=r
        )
        self.dead_letters = Counter(
            "fairseat_persister_dead_letters_total", "Outbox events dead-lettered", registry=r
        )
        self.persister_lag = Gauge(
            "fairseat_persister_lag_seconds",
            "Age of the oldest event in the last batch",
            registry=r,
            multiprocess_mode="max",
        )
        self.expired = Counter(
            "fairseat_holds_expired_total", "Holds expired by the sweeper", registry=r
        )
        self.backend_errors = Counter(
            "fairseat_backend_errors_total",
            "Redis/Postgres errors seen by handlers",
            ["backend"],
            registry=r,
        )
