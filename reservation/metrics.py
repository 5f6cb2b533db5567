"""Prometheus metrics on a private registry (no globals: one ``Metrics`` per app/worker).

When several worker processes serve one port, ``prometheus_client``'s multiprocess mode
aggregates their samples (``fairseat serve`` sets it up; see reservation.runtime.serve).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, values
from prometheus_client import Counter as _Counter
from prometheus_client import Histogram as _Histogram


def multiprocess_values_with_cached_pid() -> None:
    """In multiprocess mode, prometheus_client's values call ``os.getpid()`` on every
    increment to notice a fork: a system call, ~1-3 % of a hold's worker CPU (py-spy,
    docs/load-testing.md). They get the pid from here instead, kept current in every
    child by an at-fork hook, so a fork is noticed exactly as before. Call it after
    setting PROMETHEUS_MULTIPROC_DIR and before the metrics are made."""
    current = [os.getpid()]

    def refresh() -> None:
        current[0] = os.getpid()

    os.register_at_fork(after_in_child=refresh)
    values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]
        process_identifier=lambda: current[0]
    )


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _CachedLabels:
    """``labels(...)`` answered from a plain dict after the first call: prometheus_client
    validates the values and takes a lock on every call, and the hot paths call it a few
    times per request with a small fixed set of values (~3 % of a hold's CPU). Children
    are never removed here, so the cache cannot go stale."""

    _fast: dict[tuple[object, ...], Any]

    def labels(self, *values: object, **kw: object) -> Any:
        if kw:
            return super().labels(*values, **kw)  # type: ignore[misc]
        fast = self.__dict__.setdefault("_fast", {})
        child = fast.get(values)
        if child is None:
            child = fast[values] = super().labels(*values)  # type: ignore[misc]
        return child


class Counter(_CachedLabels, _Counter):
    pass


class Histogram(_CachedLabels, _Histogram):
    pass


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
        # --- notifications (issue 6)
        self.notifications_recorded = Counter(
            "fairseat_notifications_recorded_total",
            "Notifications recorded (counted when the notifier first picks them up)",
            ["kind"],
            registry=r,
        )
        self.notifications_delivered = Counter(
            "fairseat_notifications_delivered_total",
            "Notifications delivered, by channel",
            ["channel"],
            registry=r,
        )
        self.notifications_failed = Counter(
            "fairseat_notifications_failed_total",
            "Failed delivery attempts by channel and outcome (retry: tried again later;"
            " given_up: no further attempt)",
            ["channel", "outcome"],
            registry=r,
        )
        self.notifier_lag = Gauge(
            "fairseat_notifier_lag_seconds",
            "Age of the oldest notification still waiting for a channel",
            registry=r,
            multiprocess_mode="max",
        )
        self.reminders_fired = Counter(
            "fairseat_reminders_fired_total", "Reminders turned into notifications", registry=r
        )
        self.live_streams = Gauge(
            "fairseat_live_streams",
            "Open server-sent event streams",
            registry=r,
            multiprocess_mode="livesum",
        )
        # --- live metrics (issue 7): set only by the stock sampler in the background
        # process (reservation.workers.stock_sampler), from Redis and Postgres, so a
        # multiprocess scrape sees one writer. Counters follow the totals kept there (a
        # queue's joins and admissions, the waitlist's ended orders): their value is the
        # stored total, so a restarted sampler continues the series instead of resetting.
        self.queue_joins = Counter(
            "fairseat_queue_joins_total", "People who joined a queued sale", ["sale"], registry=r
        )
        self.queue_admissions = Counter(
            "fairseat_queue_admissions_total",
            "Queue positions admitted to try a hold",
            ["sale"],
            registry=r,
        )
        self.queue_waiting = Gauge(
            "fairseat_queue_waiting",
            "People in a queued sale not admitted yet",
            ["sale"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.queue_admitted_unused = Gauge(
            "fairseat_queue_admitted_unused",
            "Admissions not used yet and not lapsed (each may hold once)",
            ["sale"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.queue_remaining = Gauge(
            "fairseat_queue_remaining",
            "Stock the queue still admits people for",
            ["sale"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.waitlist_waiting = Gauge(
            "fairseat_waitlist_waiting",
            "Waitlist orders still waiting, by kind (train, slot)",
            ["kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.waitlist_fulfilled = Counter(
            "fairseat_waitlist_fulfilled_total",
            "Waitlist orders given a hold",
            ["kind"],
            registry=r,
        )
        self.waitlist_ended = Counter(
            "fairseat_waitlist_ended_total",
            "Waitlist orders ended unfulfilled, by reason (citizen, deadline, not_sold_out)",
            ["kind", "reason"],
            registry=r,
        )
        self.stock_remaining = Gauge(
            "fairseat_stock_remaining",
            "Remaining places of a watched unit: slots and slot sales (span=places), train"
            " runs per class (span=whole_trip: first to last stop; min_segment: the"
            " tightest segment)",
            ["unit", "seat_class", "span"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.stock_watched = Gauge(
            "fairseat_stock_watched_units",
            "Units the sampler watches (capped by FAIRSEAT_WATCH_MAX)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.sampled_at = Gauge(
            "fairseat_live_sampled_timestamp_seconds",
            "When the stock sampler last finished a pass (Unix time)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
