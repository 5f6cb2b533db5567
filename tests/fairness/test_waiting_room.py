"""The waiting room over HTTP on real Postgres and Redis: the draw is reproducible from
what is published, admission is paced to the stock, tokens are single-use and bound to
their account, a hold without one is refused, and a sell-out reaches everyone waiting."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from reservation.fairness import audit, lottery
from tests.api_fixture import Api
from tests.fairness.queue_support import (
    WINDOW_S,
    citizens,
    hold,
    join,
    open_the_sale,
    poll,
    queued_sale,
)


def by_the_docs_recipe(d: dict[str, Any]) -> list[str]:
    """docs/fairness.md, "Verify a sale yourself", line for line."""
    log = {e["kind"]: e for e in d["audit"]["entries"]}
    seqs = [log[k]["seq"] for k in ("lottery_commitment", "lottery_joiners", "lottery_seed")]
    assert seqs == sorted(seqs)
    seed = bytes.fromhex(log["lottery_seed"]["payload"]["seed"])
    assert hashlib.sha256(seed).hexdigest() == log["lottery_commitment"]["payload"]["commitment"]
    lines = [
        json.dumps(j, sort_keys=True, separators=(",", ":"))
        for j in sorted(d["joiners"], key=lambda j: j["join_id"])
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert digest == log["lottery_joiners"]["payload"]["digest"]
    window_ends = log["lottery_commitment"]["payload"]["window_ends_ms"]

    def key(j: dict[str, Any]) -> tuple[str, str]:
        return (hashlib.sha256(seed + j["join_id"].encode()).hexdigest(), j["join_id"])

    order = sorted((j for j in d["joiners"] if j["joined_ms"] < window_ends), key=key)
    return [j["join_id"] for j in order]


async def test_the_order_is_reproducible_from_the_published_seed(api: Api) -> None:
    sale, _ = await queued_sale(api, capacity=3)
    assert sale["seed"] is None and len(sale["commitment"]) == 64
    people = await citizens(api, 10)
    joined = {}
    for i, (account, headers) in enumerate(people[:8]):
        api.clock.advance(0.5 if i else 0)
        joined[account] = await join(api, sale["sale_id"], headers)
        assert joined[account]["in_window"] is True
    again = await join(api, sale["sale_id"], people[0][1], status=200)
    assert again["join_id"] == joined[people[0][0]]["join_id"] and again["replay"] is True
    # Before the window closes nothing about the order is known, the seed least of all.
    early = await (await api.client.get(f"/v1/sales/{sale['sale_id']}/draw")).json()
    assert early["seed"] is None and early["joiners"] == []
    assert [e["kind"] for e in early["audit"]["entries"]] == ["release", "lottery_commitment"]
    assert (await poll(api, sale["sale_id"], people[0][1]))["state"] == "draw_pending"

    open_the_sale(api)
    for account, headers in people[8:]:  # after the window: first come, first served
        api.clock.advance(1)
        joined[account] = await join(api, sale["sale_id"], headers)
        assert joined[account]["in_window"] is False

    record = await (await api.client.get(f"/v1/sales/{sale['sale_id']}/draw")).json()
    entries = record["audit"]["entries"]
    assert audit.verify_entries(entries).ok
    published = [lottery.Joiner.from_dict(j) for j in record["joiners"]]
    assert len(published) == 8
    order = lottery.verify_from_log(entries, published)
    assert lottery.commitment(bytes.fromhex(record["seed"])) == sale["commitment"]
    assert by_the_docs_recipe(record) == order
    expected = {jid: i for i, jid in enumerate(order, start=1)}
    for account, headers in people:
        position = (await poll(api, sale["sale_id"], headers))["position"]
        jid = joined[account]["join_id"]
        if jid in expected:
            assert position == expected[jid]
        else:  # late joiners in arrival order behind the window
            assert position == 8 + [a for a, _ in people[8:]].index(account) + 1
    # The seed decided it, not the arrival order (8 joiners: 1/40320 to be identical).
    arrival_order = [joined[a]["join_id"] for a, _ in people[:8]]
    assert order != arrival_order
    # Tampering with the published list is caught.
    swapped = [lottery.Joiner(p.join_id, p.arrival + 1, p.joined_ms) for p in published]
    try:
        lottery.verify_from_log(entries, swapped)
    except lottery.LotteryError:
        pass
    else:
        raise AssertionError("a changed joiners list verified")


async def test_a_hold_without_a_valid_token_is_refused_during_a_queued_sale(api: Api) -> None:
    sale, [slot] = await queued_sale(api)
    [(_, headers)] = await citizens(api, 1)
    resp = await hold(api, slot["id"], headers)
    assert resp.status == 403
    body = await resp.json()
    assert body["code"] == "queue_token_required"
    assert body["fields"]["queue"] == f"/v1/sales/{sale['sale_id']}/queue"
    open_the_sale(api)  # released now, but still queued
    assert (await hold(api, slot["id"], headers)).status == 403
    forged = await hold(api, slot["id"], headers, token="qt1.e30.AAAA")
    assert forged.status == 403 and (await forged.json())["code"] == "queue_token_invalid"
    # A slot of another release is not in the sale: no token needed.
    [other] = await api.publish("hosp-a", [api.slot(capacity=1, hours_ahead=50)])
    assert (await hold(api, other["id"], headers)).status == 201
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 5


async def test_tokens_are_single_use_bound_to_the_account_and_unforgeable(api: Api) -> None:
    sale, [slot] = await queued_sale(api, capacity=5)
    (_, a_headers), (_, b_headers) = await citizens(api, 2)
    await join(api, sale["sale_id"], a_headers)
    await join(api, sale["sale_id"], b_headers)
    open_the_sale(api)
    a_status = await poll(api, sale["sale_id"], a_headers)
    assert a_status["state"] == "admitted"
    token = a_status["queue_token"]
    assert (await poll(api, sale["sale_id"], a_headers))["queue_token"] == token  # stable

    stolen = await hold(api, slot["id"], b_headers, token)
    assert stolen.status == 403 and (await stolen.json())["code"] == "queue_token_wrong_account"
    head, payload, signature = token.split(".")
    altered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    forged = await hold(api, slot["id"], a_headers, altered)
    assert forged.status == 403 and (await forged.json())["code"] == "queue_token_invalid"

    first = await hold(api, slot["id"], a_headers, token, key="k1")
    assert first.status == 201, await first.text()
    retry = await hold(api, slot["id"], a_headers, token, key="k1")  # lost reply: same hold
    assert retry.status == 200 and (await retry.json())["replay"] is True
    replay = await hold(api, slot["id"], a_headers, token, key="k2")
    assert replay.status == 409 and (await replay.json())["code"] == "queue_token_used"
    assert (await api.services.slots.available([slot["id"]]))[slot["id"]] == 4
    assert (await poll(api, sale["sale_id"], a_headers))["state"] == "done"

    # Expired: Bob's token after its admission ended.
    b_token = (await poll(api, sale["sale_id"], b_headers))["queue_token"]
    api.clock.advance(sale["admission"]["admission_ttl_ms"] / 1000)
    late = await hold(api, slot["id"], b_headers, b_token)
    assert late.status == 403 and (await late.json())["code"] == "queue_token_expired"
    assert (await poll(api, sale["sale_id"], b_headers))["state"] == "lapsed"


async def test_admission_is_paced_to_the_remaining_stock(api: Api) -> None:
    sale, [slot] = await queued_sale(api, capacity=3)
    people = await citizens(api, 12)
    for _, headers in people:
        await join(api, sale["sale_id"], headers)
    open_the_sale(api)
    # 12 concurrent polls: exactly 3 admitted (k = 1, 3 places).
    states = await asyncio.gather(*(poll(api, sale["sale_id"], h) for _, h in people))
    admitted = [i for i, s in enumerate(states) if s["state"] == "admitted"]
    assert len(admitted) == 3
    assert sorted(states[i]["position"] for i in admitted) == [1, 2, 3]
    waiting = [s for s in states if s["state"] == "waiting"]
    assert len(waiting) == 9
    fourth = next(s for s in waiting if s["position"] == 4)
    assert fourth["ahead"] == 3 and fourth["chance"] == 0.75  # 3 places for 4 people
    # One admitted person holds: 2 places left, 2 admissions unused: nobody new.
    token = states[admitted[0]]["queue_token"]
    assert (await hold(api, slot["id"], people[admitted[0]][1], token)).status == 201
    states = await asyncio.gather(*(poll(api, sale["sale_id"], h) for _, h in people))
    assert sum(s["state"] == "admitted" for s in states) == 2
    # The two unused admissions lapse: the next two are admitted, never more.
    api.clock.advance(sale["admission"]["admission_ttl_ms"] / 1000)
    states = await asyncio.gather(*(poll(api, sale["sale_id"], h) for _, h in people))
    assert sorted(s["position"] for s in states if s["state"] == "admitted") == [4, 5]
    assert sum(s["state"] == "lapsed" for s in states) == 2


async def test_a_larger_pacing_factor_admits_k_times_the_stock(api: Api) -> None:
    sale, _ = await queued_sale(api, capacity=3, admit_factor=2)
    people = await citizens(api, 10)
    for _, headers in people:
        await join(api, sale["sale_id"], headers)
    open_the_sale(api)
    states = await asyncio.gather(*(poll(api, sale["sale_id"], h) for _, h in people))
    assert sum(s["state"] == "admitted" for s in states) == 6


async def test_sold_out_tells_everyone_waiting_and_offers_the_waitlist(api: Api) -> None:
    sale, [slot] = await queued_sale(api, capacity=2)
    *people, (_, newcomer) = await citizens(api, 7)  # one call: the helper numbers phones
    for _, headers in people:
        await join(api, sale["sale_id"], headers)
    open_the_sale(api)
    states = [await poll(api, sale["sale_id"], h) for _, h in people]
    buyers = [people[i] for i, s in enumerate(states) if s["state"] == "admitted"]
    tokens = [s["queue_token"] for s in states if s["state"] == "admitted"]
    for (_, headers), token in zip(buyers, tokens, strict=True):
        assert (await hold(api, slot["id"], headers, token)).status == 201
    await api.services.waiting_room.drain()
    buyer_ids = {a for a, _ in buyers}
    for account, headers in people:
        state = await poll(api, sale["sale_id"], headers)
        if account in buyer_ids:
            assert state["state"] == "done"
        else:
            assert state["state"] == "sold_out" and state["waitlist"] == "/v1/waitlist"
            assert state["chance"] == 0
    async with api.services.pool.acquire() as conn:
        told = await conn.fetch(
            "SELECT account_id, payload->>'waitlist' AS link FROM notifications"
            " WHERE kind = 'sold_out' AND subject = $1",
            f"sale:{sale['sale_id']}",
        )
    assert {r["account_id"] for r in told} == {a for a, _ in people} - buyer_ids
    assert {r["link"] for r in told} == {"/v1/waitlist"}
    # Told once: the sale records it, later polls add nothing.
    assert await api.services.waiting_room.notify_sold_out(sale["sale_id"]) == 0
    late = await api.client.post(f"/v1/sales/{sale['sale_id']}/queue", headers=newcomer)
    assert late.status == 409 and (await late.json())["fields"]["waitlist"] == "/v1/waitlist"


async def test_sales_are_public_and_validated(api: Api) -> None:
    sale, _ = await queued_sale(api)
    public = await (await api.client.get(f"/v1/sales/{sale['sale_id']}")).json()
    assert public["commitment"] == sale["commitment"] and public["phase"] == "joining"
    assert public["window_ends_ms"] - WINDOW_S * 1000 == public["window_ends_ms"] - 10_000
    missing = await api.client.get("/v1/sales/no-such-sale")
    assert missing.status == 404
    twice = await api.client.post(
        "/v1/sales",
        json={
            "sale_id": "sale-x",
            "kind": "slots",
            "provider_id": "hosp-a",
            "release_at": api.clock.now.isoformat(),
        },
        headers=api.operator,
    )
    assert twice.status == 422  # nothing released at that moment (and it is not ahead)
    staff_of_b = await api.client.post(
        "/v1/sales",
        json={
            "sale_id": "sale-y",
            "kind": "slots",
            "provider_id": "hosp-a",
            "release_at": api.clock.now.isoformat(),
        },
        headers=api.staff_headers("hosp-b"),
    )
    assert staff_of_b.status == 403
    [(_, headers)] = await citizens(api, 1)
    not_joined = await api.client.get(f"/v1/sales/{sale['sale_id']}/queue", headers=headers)
    assert not_joined.status == 404 and (await not_joined.json())["code"] == "not_in_queue"


async def test_a_queue_redis_lost_is_opened_again_from_the_record(api: Api) -> None:
    sale, _ = await queued_sale(api)
    [(_, headers)] = await citizens(api, 1)
    keys = api.services.waiting_room.queue.keys.sale(sale["sale_id"])
    assert await api.services.redis.delete(keys.meta) == 1  # as after a Redis loss
    joined = await join(api, sale["sale_id"], headers)
    assert joined["in_window"] is True
    assert await api.services.redis.hget(keys.meta, "stock") == "5"
