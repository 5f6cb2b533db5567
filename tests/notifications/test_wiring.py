"""The notifier runs in the background process `fairseat serve` starts, with the senders
the settings name; settings refuse unknown senders at start-up."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from reservation.runtime.serve import run_background
from reservation.settings import Settings, SettingsError
from tests.api_fixture import Api
from tests.helpers import insert_citizens
from tests.notifications.support import record_plain


async def test_the_background_process_delivers_through_the_log_sender(
    settings: Settings, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    [(account, _)] = await insert_citizens(api, 1)
    [nid] = await record_plain(api, account, 1)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="fairseat.notifications"):
        task = asyncio.create_task(
            run_background(
                settings.replace(notify_senders=("log",)), stop=stop, which=("notifier",)
            )
        )
        try:
            for _ in range(200):  # a guard against a hang, not a timing assertion
                async with api.services.pool.acquire() as conn:
                    done = await conn.fetchval(
                        "SELECT channel FROM notification_deliveries WHERE notification_id = $1",
                        nid,
                    )
                if done is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
            # run_background installed its stop handlers on the shared test loop: undo.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    assert done == "log"
    assert any(f"notify {account} confirmed" in r.getMessage() for r in caplog.records)


def test_settings_choose_the_senders() -> None:
    assert Settings.from_env({}).notify_senders == ("log",)
    assert Settings.from_env({"FAIRSEAT_NOTIFY_SENDERS": ""}).notify_senders == ()
    chosen = Settings.from_env(
        {
            "FAIRSEAT_NOTIFY_SENDERS": "log, webhook",
            "FAIRSEAT_NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "FAIRSEAT_NOTIFY_WEBHOOK_TIMEOUT_MS": "800",
        }
    )
    assert chosen.notify_senders == ("log", "webhook")
    assert chosen.notify_webhook_timeout_ms == 800
    for bad in ({"FAIRSEAT_NOTIFY_SENDERS": "sms"}, {"FAIRSEAT_NOTIFY_SENDERS": "webhook"}):
        with pytest.raises(SettingsError):
            Settings.from_env(bad)
    with pytest.raises(SettingsError):
        Settings.from_env({"FAIRSEAT_SSE_MAX_STREAMS": "0"})
