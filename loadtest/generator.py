"""A lean asyncio load generator: closed loop (N workers) or open loop (fixed arrival rate).

Why not locust for ceilings: locust reaches ~8k requests/s per core here; this uses
aiohttp client sessions (keep-alive, a bounded connector) on uvloop, or ``RawSession``, a
minimal keep-alive HTTP/1.1 client over asyncio protocols that costs ~40 % of aiohttp's
CPU per request (for ceilings: on a shared machine the client's CPU is the service's
loss), and can fork several processes whose histograms are merged.

Open loop measures from the *intended* send time: the scheduler launches request ``k`` at
``start + k / rate`` whatever the server does, so a stalled server shows up as latency
instead of silently slowing the load down (coordinated omission). Requests that cannot be
launched because ``max_outstanding`` are already in flight are counted as ``dropped``,
never delayed.

Latencies go into a fixed histogram of log-linear buckets (HDR-style, written here: no
dependency): values are microseconds; below 128 µs every value has its own bucket (exact),
above it each power of two is split into 64 buckets (relative error < 1/64, 1.6 %).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import orjson
from multidict import CIMultiDict

# --- the histogram ---------------------------------------------------------------------

_SUB_BITS = 7  # 128 exact buckets, then 64 per power of two
_SUB = 1 << _SUB_BITS
_HALF = _SUB >> 1
_MAX_SHIFT = 40  # up to ~2^47 µs (4.5 years): nothing real is clamped
BUCKETS = _SUB + _MAX_SHIFT * _HALF


def bucket_of(value: int) -> int:
    """The bucket index of a non-negative integer value."""
    if value < _SUB:
        return max(value, 0)
    shift = value.bit_length() - _SUB_BITS
    if shift > _MAX_SHIFT:
        return BUCKETS - 1
    return _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest value that fall in bucket ``index``."""
    if index < _SUB:
        return index, index
    shift = (index - _SUB) // _HALF + 1
    low = ((index - _SUB) % _HALF + _HALF) << shift
    return low, low + (1 << shift) - 1


@dataclass
class Histogram:
    """Counts of integer values (microseconds) in fixed log-linear buckets.

    Percentiles use the nearest-rank definition and report the highest value equivalent
    to the bucket (HdrHistogram's convention), clamped to the largest value recorded: so
    they are exact for values below 128 and never under-state a latency.
    """

    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total: int = 0
    min: int = 0
    max: int = 0
    sum: int = 0

    def record(self, value: int) -> None:
        value = max(int(value), 0)
        self.counts[bucket_of(value)] += 1
        if self.total == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.total += 1
        self.sum += value

    def merge(self, other: Histogram) -> None:
        if other.total == 0:
            return
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum

    def percentile(self, p: float) -> int:
        """The value at percentile ``p`` (0 < p <= 100); 0 when empty."""
        if self.total == 0:
            return 0
        rank = max(1, math.ceil(p / 100.0 * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(bucket_bounds(i)[1], self.max)
        return self.max  # pragma: no cover - the counts add up to total

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def to_state(self) -> dict[str, Any]:
        """A compact, picklable form (for merging results of several processes)."""
        return {
            "nz": [(i, c) for i, c in enumerate(self.counts) if c],
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "sum": self.sum,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Histogram:
        h = cls(total=state["total"], min=state["min"], max=state["max"], sum=state["sum"])
        for i, c in state["nz"]:
            h.counts[i] = c
        return h


# --- results ---------------------------------------------------------------------------


@dataclass
class Result:
    """What one run measured. ``statuses``: HTTP status (or exception name) -> count."""

    mode: str
    seconds: float
    histogram: Histogram = field(default_factory=Histogram)
    statuses: Counter[str] = field(default_factory=Counter)
    dropped: int = 0  # open loop: not launched, too many outstanding
    unfinished: int = 0  # still running when the grace period ended
    target_rate: float | None = None

    @property
    def completed(self) -> int:
        return self.histogram.total

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(str(s), 0) for s in statuses)

    @property
    def errors(self) -> int:
        """Completions that were not 2xx (HTTP errors and exceptions), plus losses."""
        ok = sum(n for s, n in self.statuses.items() if s.isdigit() and 200 <= int(s) < 300)
        return self.completed - ok + self.dropped + self.unfinished

    def merge(self, other: Result) -> None:
        self.histogram.merge(other.histogram)
        self.statuses.update(other.statuses)
        self.dropped += other.dropped
        self.unfinished += other.unfinished
        self.seconds = max(self.seconds, other.seconds)

    def ms(self, p: float) -> float:
        return self.histogram.percentile(p) / 1000.0

    def summary(self) -> str:
        h = self.histogram
        head = f"{self.mode} loop: {self.completed:,} completed in {self.seconds:.2f} s"
        head += f" = {self.rate:,.0f}/s"
        if self.target_rate is not None:
            head += f" (target {self.target_rate:,.0f}/s)"
        lines = [
            head,
            f"latency ms: p50 {self.ms(50):.2f}  p90 {self.ms(90):.2f}  p99 {self.ms(99):.2f}"
            f"  p99.9 {self.ms(99.9):.2f}  max {h.max / 1000:.2f}  mean {h.mean / 1000:.2f}",
            "statuses: "
            + (", ".join(f"{s}: {n:,}" for s, n in sorted(self.statuses.items())) or "none"),
        ]
        if self.dropped or self.unfinished:
            lines.append(f"dropped (not sent): {self.dropped:,}  unfinished: {self.unfinished:,}")
        return "\n".join(lines)

    def to_state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seconds": self.seconds,
            "histogram": self.histogram.to_state(),
            "statuses": dict(self.statuses),
            "dropped": self.dropped,
            "unfinished": self.unfinished,
            "target_rate": self.target_rate,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Result:
        return cls(
            mode=s["mode"],
            seconds=s["seconds"],
            histogram=Histogram.from_state(s["histogram"]),
            statuses=Counter(s["statuses"]),
            dropped=s["dropped"],
            unfinished=s["unfinished"],
            target_rate=s["target_rate"],
        )


# --- running ---------------------------------------------------------------------------

# One request (or a short sequence) for operation number ``i``: returns the HTTP status
# that counts. Exceptions are counted by class name.
Op = Callable[[aiohttp.ClientSession, int], Awaitable[int]]
Clock = Callable[[], int]  # nanoseconds, monotonic


def new_session(limit: int) -> aiohttp.ClientSession:
    """Keep-alive, at most ``limit`` connections, no per-request timeout but a total cap."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit, force_close=False, ttl_dns_cache=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60),
        skip_auto_headers=("User-Agent",),
    )


class RawResponse:
    """An answer read by ``RawSession``: the few attributes of aiohttp's response that
    the operations use."""

    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body

    @property
    def content_length(self) -> int:
        return len(self._body)

    async def read(self) -> bytes:
        return self._body

    async def text(self) -> str:
        return self._body.decode()

    async def json(self, content_type: str | None = None) -> Any:
        return orjson.loads(self._body)

    async def __aenter__(self) -> RawResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time; answers must carry a
    Content-Length (the service's always do)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[RawResponse] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but provide its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None or self._waiter.done():
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
        status = int(lines[0].split(" ", 2)[1])
        length = "0" if status in (204, 304) or status < 200 else headers.get("Content-Length")
        if length is None:
            self._waiter.set_exception(ValueError("answer without Content-Length"))
            self.close()
            return
        total = end + 4 + int(length)
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        if headers.get("Connection", "").lower() == "close":
            self.close()
        self._waiter.set_result(RawResponse(status, headers, body))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def send(self, request: bytes) -> RawResponse:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


class RawSession:
    """A minimal keep-alive HTTP/1.1 client over asyncio protocols, for ceilings: it spends
    a fraction of aiohttp's client CPU per request, so on a shared machine more of the CPU
    goes to the service under test. It implements only what the operations here use
    (``get``/``post``/``request`` as async context managers; ``status``, ``headers``,
    ``read()``, ``json()``), for one host, at most ``limit`` connections."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_RawConnection] = []
        self._all: set[_RawConnection] = set()

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str] | None, json: Any
    ) -> RawResponse:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + ("?" + parts.query if parts.query else "")
        body = b"" if json is None else orjson.dumps(json)
        head = [f"{method} {path or '/'} HTTP/1.1", f"Host: {host}:{port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if json is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self._slots:
            conn = None
            while self._idle and conn is None:
                candidate = self._idle.pop()
                conn = None if candidate.closed else candidate
            if conn is None:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _RawConnection, host, port
                )
                self._all.add(conn)
            try:
                answer = await conn.send(request)
            except BaseException:
                conn.close()  # half a conversation: never reuse it
                self._all.discard(conn)
                raise
            if conn.closed:
                self._all.discard(conn)
            else:
                self._idle.append(conn)
            return answer

    def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, json: Any = None
    ) -> _Exchange:
        return _Exchange(self._exchange(method, url, headers, json))

    def get(self, url: str, *, headers: dict[str, str] | None = None) -> _Exchange:
        return self.request("GET", url, headers=headers)

    def post(
        self, url: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> _Exchange:
        return self.request("POST", url, headers=headers, json=json)

    async def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()

    async def __aenter__(self) -> RawSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Exchange:
    def __init__(self, answer: Awaitable[RawResponse]) -> None:
        self._answer = answer

    async def __aenter__(self) -> RawResponse:
        return await self._answer

    async def __aexit__(self, *exc: object) -> None:
        return None


def open_session(limit: int, client: str = "aiohttp") -> aiohttp.ClientSession:
    """An aiohttp session, or (``client="raw"``) a ``RawSession`` standing in for one:
    the operations use only the subset both provide."""
    if client == "raw":
        return cast(aiohttp.ClientSession, RawSession(limit))
    return new_session(limit)


async def _timed(
    op: Op,
    session: aiohttp.ClientSession,
    i: int,
    started_ns: int,
    result: Result,
    clock: Clock,
) -> None:
    try:
        status = str(await op(session, i))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        status = type(exc).__name__
    result.histogram.record((clock() - started_ns) // 1000)
    result.statuses[status] += 1


async def closed_loop(
    op: Op,
    *,
    concurrency: int,
    seconds: float,
    session: aiohttp.ClientSession,
    indices: Iterator[int] | None = None,
    clock: Clock = time.perf_counter_ns,
) -> Result:
    """``concurrency`` workers, each sending its next request when the last one answered."""
    result = Result("closed", 0.0)
    counter = indices if indices is not None else iter(range(1 << 62))
    stop_at = clock() + int(seconds * 1e9)

    async def worker() -> None:
        while clock() < stop_at:
            await _timed(op, session, next(counter), clock(), result, clock)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = (clock() - started) / 1e9
    return result


MIN_TICK_NS = 1_000_000  # the open loop's shortest sleep (see open_loop)


def intended_times(start_ns: int, rate: float, count: int) -> list[int]:
    """The send times of an open-loop schedule (exposed for tests)."""
    step = 1e9 / rate
    return [start_ns + int(k * step) for k in range(count)]


async def open_loop(
    op: Op,
    *,
    rate: float,
    seconds: float,
    session: aiohttp.ClientSession,
    max_outstanding: int = 50_000,
    grace: float = 10.0,
    indices: Iterator[int] | None = None,
    clock: Clock = time.perf_counter_ns,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Result:
    """Launch request ``k`` at ``start + k / rate`` for ``seconds``; latency runs from that
    intended time, not from when the event loop got round to sending it."""
    result = Result("open", 0.0, target_rate=rate)
    counter = indices if indices is not None else iter(range(1 << 62))
    step_ns = 1e9 / rate
    total = int(rate * seconds)
    outstanding: set[asyncio.Task[None]] = set()
    start = clock()
    k = 0
    while k < total:
        now = clock()
        # Everything whose time has come is launched now, however late we are.
        while k < total and start + int(k * step_ns) <= now:
            intended = start + int(k * step_ns)
            k += 1
            if len(outstanding) >= max_outstanding:
                result.dropped += 1
                continue
            task = asyncio.create_task(_timed(op, session, next(counter), intended, result, clock))
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
        if k < total:
            # Never less than a millisecond: uvloop's timers count whole milliseconds, so
            # a shorter sleep returns at once and this loop spun a core between sends
            # (~240 µs of generator CPU per request at 4,000/s, against ~25 µs in a
            # closed loop), taking it from the service under test. Requests due within
            # the tick leave together at its end; their latency still runs from their
            # intended times.
            wait_ns = start + int(k * step_ns) - clock()
            await sleep(max(wait_ns, MIN_TICK_NS) / 1e9)
    sent_for = (clock() - start) / 1e9
    if outstanding:
        _done, pending = await asyncio.wait(set(outstanding), timeout=grace)
        for task in pending:
            task.cancel()
        result.unfinished = len(pending)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    # The rate is over the sending window (the schedule), not the drain.
    result.seconds = max(sent_for, seconds)
    return result


@dataclass(frozen=True)
class LoadSpec:
    """One run: closed loop when ``rate`` is None, else open loop at ``rate`` per second."""

    seconds: float
    concurrency: int = 64
    rate: float | None = None
    processes: int = 1
    connections: int | None = None  # per process; default: concurrency (closed) or 512
    client: str = "aiohttp"  # or "raw": RawSession, leaner, for ceilings

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"


async def run_in_loop(op: Op, spec: LoadSpec, *, index: int = 0, parts: int = 1) -> Result:
    """This process's share of ``spec`` (part ``index`` of ``parts``)."""
    indices = iter(range(index, 1 << 62, parts))
    if spec.rate is None:
        concurrency = max(1, spec.concurrency // parts + (index < spec.concurrency % parts))
        async with open_session(spec.connections or concurrency, spec.client) as session:
            return await closed_loop(
                op, concurrency=concurrency, seconds=spec.seconds, session=session, indices=indices
            )
    async with open_session(spec.connections or max(spec.concurrency, 512), spec.client) as session:
        return await open_loop(
            op, rate=spec.rate / parts, seconds=spec.seconds, session=session, indices=indices
        )


def _child(op: Op, spec: LoadSpec, index: int, conn: Any) -> None:
    import uvloop

    try:
        conn.send(uvloop.run(run_in_loop(op, spec, index=index, parts=spec.processes)).to_state())
    finally:
        conn.close()


def run(op: Op, spec: LoadSpec) -> Result:
    """Run ``spec`` in this process (``processes == 1``) or in forked processes, merged.

    Call it outside any event loop. With several processes, ``op`` and what it closes over
    are inherited through ``fork`` (nothing is pickled), so set-up done before is shared.
    """
    import uvloop

    if spec.processes <= 1:
        return uvloop.run(run_in_loop(op, spec))
    ctx = multiprocessing.get_context("fork")
    pipes = []
    procs = []
    for i in range(spec.processes):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(op, spec, i, child), name=f"fairseat-load-{i}")
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    merged = Result(spec.mode, 0.0, target_rate=spec.rate)
    try:
        for pipe in pipes:
            try:
                merged.merge(Result.from_state(pipe.recv()))
            except EOFError:
                merged.statuses["generator_process_died"] += 1
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return merged
