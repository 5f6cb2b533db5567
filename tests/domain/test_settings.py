"""Settings come from the environment in one place and refuse what they cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from reservation.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert (s.database_url, s.redis_url, s.port, s.workers) == (None, None, 8080, 1)
    assert s.data_dir == Path(".fairseat")
    assert s.train_release_time == "08:00"


def test_values_are_read_and_typed() -> None:
    s = Settings.from_env(
        {
            "FAIRSEAT_PORT": "9000",
            "FAIRSEAT_REDIS_CLUSTER": "yes",
            "FAIRSEAT_TRAIN_RELEASE_TIME": "07:30",
            "FAIRSEAT_BACKGROUND_NICE": "0",
            "FAIRSEAT_QUEUE_POLL_RATE_PER_ACCOUNT": "0",
            "FAIRSEAT_QUEUE_POLL_BURST_PER_ACCOUNT": "5",
        }
    )
    assert (s.port, s.redis_cluster, s.train_release_time) == (9000, True, "07:30")
    assert (s.background_nice, Settings.from_env({}).background_nice) == (0, 10)
    assert (s.queue_poll_rate_per_account, s.queue_poll_burst_per_account) == (0, 5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FAIRSEAT_PORT", "eighty"),
        ("FAIRSEAT_WORKERS", "0"),
        ("FAIRSEAT_BACKGROUND_NICE", "-5"),
        ("FAIRSEAT_QUEUE_POLL_BURST_PER_ACCOUNT", "0"),
        ("FAIRSEAT_REDIS_CLUSTER", "maybe"),
        ("FAIRSEAT_TRAIN_RELEASE_TIME", "8am"),
        ("FAIRSEAT_TRAIN_RELEASE_TIME", "24:00"),
        ("FAIRSEAT_TRAIN_RELEASE_TIME", "08:5"),
    ],
)
def test_unusable_values_are_refused_with_the_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
