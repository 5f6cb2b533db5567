"""Senders: where the notifier hands a notification (SMS gateway, webhook, log...).

A sender is anything with a ``channel`` name and an async ``send`` that returns a
``SendResult``; the notifier records one delivery row per (notification, channel). A
sender must not raise for a failed delivery: it answers ``ok=False`` (retried later with
backoff) or ``permanent=True`` (given up at once, e.g. HTTP 400: the same request can
never succeed).

Idempotency: each delivery carries ``key`` = ``<notification id>:<channel>``. The webhook
sends it as ``Idempotency-Key``; a receiver that keeps seen keys turns our
at-least-once into exactly-once on its side.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from reservation.domain.clock import iso
from reservation.notifications.store import Stored

log = logging.getLogger("fairseat.notifications")


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    permanent: bool = False  # a failure no retry can fix
    attempts: int = 1
    detail: str = ""


class Sender(Protocol):
    channel: str

    async def send(self, notification: Stored, key: str) -> SendResult: ...

    async def aclose(self) -> None: ...


def message(notification: Stored) -> dict[str, Any]:
    """The JSON a sender hands on (and the live page shows)."""
    return {
        "id": notification.id,
        "account_id": notification.account_id,
        "kind": notification.kind,
        "subject": notification.subject,
        "payload": notification.payload,
        "created_at": iso(notification.created_at),
    }


class LogSender:
    """The default: one log line per notification (a development stand-in for SMS)."""

    channel = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    async def send(self, notification: Stored, key: str) -> SendResult:
        self._log.info(
            "notify %s %s %s %s",
            notification.account_id,
            notification.kind,
            notification.subject,
            orjson.dumps(notification.payload).decode(),
        )
        return SendResult(ok=True)

    async def aclose(self) -> None:
        return None


class WebhookSender:
    """POST the notification as JSON to one URL (e.g. an SMS gateway).

    A transport error, a timeout, 429 or 5xx is retried here a few times with exponential
    backoff; if they all fail the notifier retries the delivery on a later pass (its
    backoff is persistent, so a restart keeps it). Any other 4xx is permanent. 2xx is
    delivered. Every attempt of one delivery carries the same ``Idempotency-Key``.
    """

    channel = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._session = session
        self._own_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def send(self, notification: Stored, key: str) -> SendResult:
        body = orjson.dumps(message(notification))
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        detail = ""
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._client().post(
                    self.url, data=body, headers=headers, timeout=self.timeout
                ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        return SendResult(ok=True, attempts=attempt)
                    detail = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status not in (408, 409, 425, 429):
                        return SendResult(ok=False, permanent=True, attempts=attempt, detail=detail)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                detail = repr(exc)
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        return SendResult(ok=False, attempts=self.attempts, detail=detail)

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


def build_senders(
    names: tuple[str, ...],
    *,
    webhook_url: str | None,
    webhook_timeout_s: float,
    webhook_attempts: int,
) -> list[Sender]:
    """The senders named in settings (``FAIRSEAT_NOTIFY_SENDERS``), in order."""
    senders: list[Sender] = []
    for name in names:
        if name == "log":
            senders.append(LogSender())
        elif name == "webhook":
            if not webhook_url:
                raise ValueError("the webhook sender needs FAIRSEAT_NOTIFY_WEBHOOK_URL")
            senders.append(
                WebhookSender(webhook_url, timeout_s=webhook_timeout_s, attempts=webhook_attempts)
            )
        else:
            raise ValueError(f"unknown notification sender {name!r}")
    return senders
