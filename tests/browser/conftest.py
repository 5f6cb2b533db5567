"""Browser tests: the real service (``fairseat serve`` in a child process, on a random
port, with this session's throwaway Postgres and Valkey and a fresh database and key
prefix per test) driven by Debian's headless Chromium through Playwright, on a phone-sized
viewport. Each test saves a screenshot under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from reservation.runtime.ports import free_port
from tests.server_output import start_serve

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
OPERATOR_KEY = "op-browser-test"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 360, "height": 740}
# A shared 2-core CI machine is slow: give each step room (the defaults are 5 s).
STEP_TIMEOUT_MS = 20_000
expect.set_options(timeout=STEP_TIMEOUT_MS)


@dataclass
class Live:
    """A running ``fairseat serve``: its URL, demo staff keys and the operator key."""

    url: str
    hospital_key: str
    vaccine_key: str
    operator_key: str
    output: list[str] = field(default_factory=list)


@pytest.fixture
def live(database_url: str, redis_url: str, key_prefix: str, server_dir: Path) -> Iterator[Live]:
    port = free_port()
    data_dir = server_dir / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSEAT_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FAIRSEAT_KEY_PREFIX=key_prefix,
        FAIRSEAT_PORT=str(port),
        FAIRSEAT_DATA_DIR=str(data_dir),
        FAIRSEAT_WORKERS="1",
        FAIRSEAT_OPERATOR_KEY=OPERATOR_KEY,
        FAIRSEAT_SECRET_KEY="browser-test-secret",
        FAIRSEAT_ID_HMAC_KEY="browser-test-hmac",
        PYTHONUNBUFFERED="1",
    )
    proc, output = start_serve(env, ready_within=90)
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    try:
        yield Live(
            url=f"http://127.0.0.1:{port}",
            hospital_key=creds["hospital_staff_key (provider pumch)"],
            vaccine_key=creds["vaccine_staff_key (provider bj-dongcheng-cdc)"],
            operator_key=OPERATOR_KEY,
            output=output.lines,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output.close()


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        # scripts/test installs it (apt-get) when run as root, as CI is: there a missing
        # browser is a failure, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: scripts/test should have installed it")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(chromium_path), args=LAUNCH_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A phone-sized page (360×740, touch, English unless a test switches) that fails the
    test on any script error, and leaves a screenshot whatever the outcome."""
    context = await browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        timezone_id="Asia/Shanghai",
    )
    context.set_default_timeout(STEP_TIMEOUT_MS)
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        # A page that crashed cannot be photographed: that must not hide why the test failed.
        with contextlib.suppress(PlaywrightError):
            await pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()
    assert not errors, f"script errors in the page: {errors}"


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
