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

    # --- durability (issue 4): fields below this line ---
    # How often a process re-reads the inventory epoch from Postgres (and checks that no
    # Redis node restarted since the last rebuild), and whether ``fairseat serve`` rebuilds
    # the live inventory from Postgres at start when sales are closed.
    epoch_refresh_ms: int = 1000
    watch_redis_restarts: bool = True
    rebuild_on_start: bool = True

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
            # --- durability (issue 4): fields below this line ---
            epoch_refresh_ms=_int(
                env, "FAIRSEAT_EPOCH_REFRESH_MS", defaults.epoch_refresh_ms, minimum=10
            ),
            watch_redis_restarts=_bool(
                env, "FAIRSEAT_WATCH_REDIS_RESTARTS", defaults.watch_redis_restarts
            ),
            rebuild_on_start=_bool(env, "FAIRSEAT_REBUILD_ON_START", defaults.rebuild_on_start),
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"])
            if env.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
