"""A citizen lists their waitlist orders, or reads one with its place in each line."""

from __future__ import annotations

from typing import Any

from reservation.errors import NotFound
from reservation.services import Services
from reservation.store import waitlist as store
from reservation.workflows.waitlist_common import order_view


async def my_orders(services: Services, account_id: str) -> list[dict[str, Any]]:
    async with services.pool.acquire() as conn:
        orders = await store.orders_of(conn, account_id)
    return [await order_view(services, o) for o in orders]


async def my_order(services: Services, account_id: str, order_id: str) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        order = await store.get_order(conn, order_id)
    if order is None or order["account_id"] != account_id:
        raise NotFound("No such waitlist order.")  # never confirm another's id exists
    return await order_view(services, order)
