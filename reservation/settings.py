"""All configuration, read from the environment in exactly one place.

Nothing else in the code base reads ``os.environ``: pass a ``Settings`` around instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path


class SettingsError(ValueError):
    """A setting in the environment is present but unusable."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean, got {raw!r}")


def _hhmm(env: Mapping[str, str], name: str, default: str) -> str:
    """A time of day as ``HH:MM`` (China time), checked here so a typo fails at start-up."""
    raw = env.get(name) or default
    hour, sep, minute = raw.partition(":")
    if not (
        sep
        and hour.isdigit()
        and minute.isdigit()
        and len(minute) == 2
        and int(hour) < 24
        and int(minute) < 60
    ):
        raise SettingsError(f"{name} must be HH:MM, got {raw!r}")
    return raw


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw if raw else None


# --- notifications (issue 6)
NOTIFY_SENDERS = ("log", "webhook")


def _senders(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list of known sender names (empty: no sender, the inbox and live page only)."""
    raw = env.get(name)
    if raw is None:
        return default
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in NOTIFY_SENDERS]
    if unknown or len(set(names)) != len(names):
        raise SettingsError(f"{name} must be a comma list of {', '.join(NOTIFY_SENDERS)}")
    if "webhook" in names and not env.get("FAIRSEAT_NOTIFY_WEBHOOK_URL"):
        raise SettingsError(f"{name} names webhook but FAIRSEAT_NOTIFY_WEBHOOK_URL is not set")
    return names


# --- fairness (issue 5)
def _networks(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list of IP networks (CIDR or single addresses); "" means none."""
    import ipaddress

    raw = env.get(name)
    if raw is None:
        return default
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise SettingsError(f"{name}: {item!r} is not an IP network") from exc
    return items


# --- live metrics (issue 7)
WATCH_KINDS = ("sale", "slot", "run")


def _watch_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma list of watched units: ``sale:<id>``, ``slot:<id>``, ``run:<id>[/<class>]``."""
    raw = env.get(name, "")
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    for item in items:
        kind, _, ident = item.partition(":")
        if kind not in WATCH_KINDS or not ident:
            raise SettingsError(
                f"{name}: {item!r} is not sale:<id>, slot:<id> or run:<run id>[/<class>]"
            )
    return items


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # Servers. ``None`` means "start an embedded one" (see reservation.runtime).
    database_url: str | None = None
    redis_url: str | None = None
    # Treat ``redis_url`` as a Redis Cluster seed node (redis://host:port).
    redis_cluster: bool = False
    redis_pool_size: int = 256

    # Where the embedded servers keep their data, and where dev secrets live.
    data_dir: Path = Path(".fairseat")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    # Secrets. When unset, ``fairseat serve`` creates random ones in ``data_dir``
    # (a development convenience; production sets them explicitly).
    secret_key: str | None = None
    id_hmac_key: str | None = None
    operator_key: str | None = None

    # Inventory.
    key_prefix: str = "fs"
    shard_count: int = 256
    slot_hold_seconds: int = 600
    max_live_holds_per_account: int = 3

    # Workers.
    run_background_workers: bool = True
    # Niceness of serve's background process (persister, sweeper, notifier, waitlist):
    # its batches yield the CPU to request handling in a rush and catch up after it
    # (docs/operations.md). Confirmations do not wait for it: they commit themselves.
    background_nice: int = 10
    persister_batch_size: int = 500
    persister_dead_letter_after: int = 5
    persister_claim_idle_ms: int = 30_000
    sweeper_interval_ms: int = 500

    # HTTP.
    max_body_bytes: int = 1_048_576
    # Requests in flight per process beyond which the service sheds load with 503.
    max_in_flight: int = 4096
    token_ttl_seconds: int = 7 * 86_400

    seed_demo_data: bool = True

    # Set by ``fairseat serve`` when several worker processes share a port: their metrics
    # are aggregated through files in this folder (prometheus_client multiprocess mode).
    metrics_dir: Path | None = None

    # --- trains (issue 3): fields below this line ---
    # Sale horizon in days (today included), the daily time (China, HH:MM) at which the
    # last day of the horizon is released, and how long search/余票 answers are reused.
    train_sale_days: int = 15
    train_release_time: str = "08:00"
    train_cache_ms: int = 2000
    # --- rush (issue 7): how long the public slot listings' catalogue part (sessions,
    # times, capacity) is reused per process; places left are always read live.
    listing_cache_ms: int = 1000

    # --- durability (issue 4): fields below this line ---
    # How often a process re-reads the inventory epoch from Postgres (and checks that no
    # Redis node restarted since the last rebuild), and whether ``fairseat serve`` rebuilds
    # the live inventory from Postgres at start when sales are closed.
    epoch_refresh_ms: int = 1000
    watch_redis_restarts: bool = True
    rebuild_on_start: bool = True

    # --- notifications (issue 6): fields below this line ---
    # Senders the notifier hands every notification to (comma list: log, webhook); the
    # webhook's URL, per-attempt timeout and attempts per pass (backoff between them).
    notify_senders: tuple[str, ...] = ("log",)
    notify_webhook_url: str | None = None
    notify_webhook_timeout_ms: int = 5000
    notify_webhook_attempts: int = 3
    notify_batch_size: int = 200
    # How long before an appointment or departure the reminder fires.
    notify_reminder_lead_s: int = 86_400
    # Live pages (server-sent events): open streams per process beyond which a new one is
    # refused with 503, and the heartbeat comment interval.
    sse_max_streams: int = 1000
    sse_heartbeat_s: int = 15

    # --- fairness (issue 5): fields below this line ---
    # Queued sales: the opening window whose joiners are drawn, the pacing factor k
    # (admitted-but-unused <= k * remaining stock), how long an admission (and its queue
    # token) lasts, and how long after its release a sale stays queued.
    queue_window_seconds: int = 10
    queue_admit_factor: int = 1
    queue_admission_seconds: int = 120
    queue_open_minutes: int = 60
    # GCRA limits on the hold routes: calls per minute (0 = off) and burst, per account,
    # per passenger ID and per client address.
    hold_rate_per_account: int = 30
    hold_burst_per_account: int = 60
    hold_rate_per_person: int = 30
    hold_burst_per_person: int = 60
    hold_rate_per_address: int = 600
    hold_burst_per_address: int = 600
    # The same kind of limit on waiting-room polls, per account: a poll runs the queue's
    # script (and admits people), so a client polling in a tight loop costs Redis time;
    # the answer asks for one poll a second (poll_after_ms).
    queue_poll_rate_per_account: int = 120
    queue_poll_burst_per_account: int = 20
    # Peers whose X-Forwarded-For is believed (CIDR list), and addresses never limited
    # per address (many people behind one: by default loopback, i.e. an undeclared proxy).
    trusted_proxies: tuple[str, ...] = ()
    rate_limit_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    # --- waitlist (issue 5, items 3-4): fields below this line ---
    # A place given up by its holder (cancel, refund, 改签) cools for a random delay in this
    # range before it can go back on open sale (the waitlist may take it at once); a place
    # whose hold expired cools for 0 ms (the waitlist's turn only). Cancel -> rebook pairs
    # of different people within the window are flagged for operators.
    handoff_delay_min_ms: int = 30_000
    handoff_delay_max_ms: int = 120_000
    handoff_flag_window_ms: int = 600_000
    waitlist_filler_interval_ms: int = 500
    waitlist_max_days: int = 31  # longest day range / deadline horizon of an order

    # --- live metrics (issue 7): what the stock sampler watches, and how often
    # Explicit units (FAIRSEAT_WATCH, comma list of sale:<id>, slot:<id>, run:<run id>
    # or run:<run id>/<class>) come first, then every open queued sale's inventory,
    # capped at stock_watch_max units so the gauges' label sets stay bounded.
    stock_watch: tuple[str, ...] = ()
    stock_watch_max: int = 50
    stock_sample_ms: int = 5000

    def __post_init__(self) -> None:
        # --- waitlist (issue 5): a reversed range is a typo, refused at start-up.
        if self.handoff_delay_min_ms > self.handoff_delay_max_ms:
            raise SettingsError(
                "FAIRSEAT_HANDOFF_DELAY_MIN_MS must not exceed FAIRSEAT_HANDOFF_DELAY_MAX_MS"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=_str(env, "DATABASE_URL"),
            redis_url=_str(env, "REDIS_URL"),
            redis_cluster=_bool(env, "FAIRSEAT_REDIS_CLUSTER", defaults.redis_cluster),
            redis_pool_size=_int(
                env, "FAIRSEAT_REDIS_POOL_SIZE", defaults.redis_pool_size, minimum=1
            ),
            data_dir=Path(env.get("FAIRSEAT_DATA_DIR") or defaults.data_dir),
            host=env.get("FAIRSEAT_HOST") or defaults.host,
            port=_int(env, "FAIRSEAT_PORT", defaults.port),
            workers=_int(env, "FAIRSEAT_WORKERS", defaults.workers, minimum=1),
            secret_key=_str(env, "FAIRSEAT_SECRET_KEY"),
            id_hmac_key=_str(env, "FAIRSEAT_ID_HMAC_KEY"),
            operator_key=_str(env, "FAIRSEAT_OPERATOR_KEY"),
            key_prefix=env.get("FAIRSEAT_KEY_PREFIX") or defaults.key_prefix,
            shard_count=_int(env, "FAIRSEAT_SHARD_COUNT", defaults.shard_count, minimum=1),
            slot_hold_seconds=_int(
                env, "FAIRSEAT_SLOT_HOLD_SECONDS", defaults.slot_hold_seconds, minimum=1
            ),
            max_live_holds_per_account=_int(
                env, "FAIRSEAT_MAX_LIVE_HOLDS", defaults.max_live_holds_per_account, minimum=1
            ),
            run_background_workers=_bool(
                env, "FAIRSEAT_BACKGROUND_WORKERS", defaults.run_background_workers
            ),
            background_nice=_int(
                env, "FAIRSEAT_BACKGROUND_NICE", defaults.background_nice, minimum=0
            ),
            persister_batch_size=_int(
                env, "FAIRSEAT_PERSISTER_BATCH", defaults.persister_batch_size, minimum=1
            ),
            persister_dead_letter_after=_int(
                env, "FAIRSEAT_DEAD_LETTER_AFTER", defaults.persister_dead_letter_after, minimum=1
            ),
            persister_claim_idle_ms=_int(
                env, "FAIRSEAT_CLAIM_IDLE_MS", defaults.persister_claim_idle_ms, minimum=1
            ),
            sweeper_interval_ms=_int(
                env, "FAIRSEAT_SWEEPER_INTERVAL_MS", defaults.sweeper_interval_ms, minimum=10
            ),
            max_in_flight=_int(env, "FAIRSEAT_MAX_IN_FLIGHT", defaults.max_in_flight, minimum=1),
            max_body_bytes=_int(
                env, "FAIRSEAT_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024
            ),
            token_ttl_seconds=_int(
                env, "FAIRSEAT_TOKEN_TTL_SECONDS", defaults.token_ttl_seconds, minimum=60
            ),
            seed_demo_data=_bool(env, "FAIRSEAT_SEED_DEMO", defaults.seed_demo_data),
            # --- trains (issue 3): fields below this line ---
            train_sale_days=_int(
                env, "FAIRSEAT_TRAIN_SALE_DAYS", defaults.train_sale_days, minimum=1
            ),
            train_release_time=_hhmm(
                env, "FAIRSEAT_TRAIN_RELEASE_TIME", defaults.train_release_time
            ),
            train_cache_ms=_int(env, "FAIRSEAT_TRAIN_CACHE_MS", defaults.train_cache_ms),
            listing_cache_ms=_int(env, "FAIRSEAT_LISTING_CACHE_MS", defaults.listing_cache_ms),
            # --- durability (issue 4): fields below this line ---
            epoch_refresh_ms=_int(
                env, "FAIRSEAT_EPOCH_REFRESH_MS", defaults.epoch_refresh_ms, minimum=10
            ),
            watch_redis_restarts=_bool(
                env, "FAIRSEAT_WATCH_REDIS_RESTARTS", defaults.watch_redis_restarts
            ),
            rebuild_on_start=_bool(env, "FAIRSEAT_REBUILD_ON_START", defaults.rebuild_on_start),
            # --- notifications (issue 6): fields below this line ---
            notify_senders=_senders(env, "FAIRSEAT_NOTIFY_SENDERS", defaults.notify_senders),
            notify_webhook_url=_str(env, "FAIRSEAT_NOTIFY_WEBHOOK_URL"),
            notify_webhook_timeout_ms=_int(
                env,
                "FAIRSEAT_NOTIFY_WEBHOOK_TIMEOUT_MS",
                defaults.notify_webhook_timeout_ms,
                minimum=10,
            ),
            notify_webhook_attempts=_int(
                env, "FAIRSEAT_NOTIFY_WEBHOOK_ATTEMPTS", defaults.notify_webhook_attempts, minimum=1
            ),
            notify_batch_size=_int(
                env, "FAIRSEAT_NOTIFY_BATCH", defaults.notify_batch_size, minimum=1
            ),
            notify_reminder_lead_s=_int(
                env, "FAIRSEAT_NOTIFY_REMINDER_LEAD_S", defaults.notify_reminder_lead_s
            ),
            sse_max_streams=_int(
                env, "FAIRSEAT_SSE_MAX_STREAMS", defaults.sse_max_streams, minimum=1
            ),
            sse_heartbeat_s=_int(
                env, "FAIRSEAT_SSE_HEARTBEAT_S", defaults.sse_heartbeat_s, minimum=1
            ),
            # --- fairness (issue 5): fields below this line ---
            queue_window_seconds=_int(
                env, "FAIRSEAT_QUEUE_WINDOW_SECONDS", defaults.queue_window_seconds
            ),
            queue_admit_factor=_int(
                env, "FAIRSEAT_QUEUE_ADMIT_FACTOR", defaults.queue_admit_factor, minimum=1
            ),
            queue_admission_seconds=_int(
                env, "FAIRSEAT_QUEUE_ADMISSION_SECONDS", defaults.queue_admission_seconds, minimum=5
            ),
            queue_open_minutes=_int(
                env, "FAIRSEAT_QUEUE_OPEN_MINUTES", defaults.queue_open_minutes, minimum=1
            ),
            hold_rate_per_account=_int(
                env, "FAIRSEAT_HOLD_RATE_PER_ACCOUNT", defaults.hold_rate_per_account
            ),
            hold_burst_per_account=_int(
                env, "FAIRSEAT_HOLD_BURST_PER_ACCOUNT", defaults.hold_burst_per_account, minimum=1
            ),
            hold_rate_per_person=_int(
                env, "FAIRSEAT_HOLD_RATE_PER_PERSON", defaults.hold_rate_per_person
            ),
            hold_burst_per_person=_int(
                env, "FAIRSEAT_HOLD_BURST_PER_PERSON", defaults.hold_burst_per_person, minimum=1
            ),
            hold_rate_per_address=_int(
                env, "FAIRSEAT_HOLD_RATE_PER_ADDRESS", defaults.hold_rate_per_address
            ),
            hold_burst_per_address=_int(
                env, "FAIRSEAT_HOLD_BURST_PER_ADDRESS", defaults.hold_burst_per_address, minimum=1
            ),
            queue_poll_rate_per_account=_int(
                env, "FAIRSEAT_QUEUE_POLL_RATE_PER_ACCOUNT", defaults.queue_poll_rate_per_account
            ),
            queue_poll_burst_per_account=_int(
                env,
                "FAIRSEAT_QUEUE_POLL_BURST_PER_ACCOUNT",
                defaults.queue_poll_burst_per_account,
                minimum=1,
            ),
            trusted_proxies=_networks(env, "FAIRSEAT_TRUSTED_PROXIES", defaults.trusted_proxies),
            rate_limit_exempt=_networks(
                env, "FAIRSEAT_RATE_LIMIT_EXEMPT", defaults.rate_limit_exempt
            ),
            # --- waitlist (issue 5, items 3-4): fields below this line ---
            handoff_delay_min_ms=_int(
                env, "FAIRSEAT_HANDOFF_DELAY_MIN_MS", defaults.handoff_delay_min_ms
            ),
            handoff_delay_max_ms=_int(
                env, "FAIRSEAT_HANDOFF_DELAY_MAX_MS", defaults.handoff_delay_max_ms
            ),
            handoff_flag_window_ms=_int(
                env, "FAIRSEAT_HANDOFF_FLAG_WINDOW_MS", defaults.handoff_flag_window_ms, minimum=1
            ),
            waitlist_filler_interval_ms=_int(
                env,
                "FAIRSEAT_WAITLIST_FILLER_INTERVAL_MS",
                defaults.waitlist_filler_interval_ms,
                minimum=10,
            ),
            waitlist_max_days=_int(
                env, "FAIRSEAT_WAITLIST_MAX_DAYS", defaults.waitlist_max_days, minimum=1
            ),
            # --- live metrics (issue 7)
            stock_watch=_watch_list(env, "FAIRSEAT_WATCH"),
            stock_watch_max=_int(env, "FAIRSEAT_WATCH_MAX", defaults.stock_watch_max, minimum=1),
            stock_sample_ms=_int(
                env, "FAIRSEAT_STOCK_SAMPLE_MS", defaults.stock_sample_ms, minimum=100
            ),
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"])
            if env.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
