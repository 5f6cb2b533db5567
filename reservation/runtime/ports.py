"""Free loopback ports for embedded servers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# A Redis Cluster node also listens on port + 10000 (the cluster bus).
CLUSTER_BUS_OFFSET = 10_000
_MIN_PORT = 10_000
_MAX_PORT = 65_535
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ATTEMPTS = 200


def _ephemeral_range() -> range:
    try:
        low, high = (int(x) for x in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # the Linux default
    return range(low, high + 1)


def _candidates(max_port: int, with_bus: bool) -> list[int]:
    # Stay outside the kernel's ephemeral range: the kernel hands those ports out as the
    # source ports of outgoing connections (our own clients included), so one probed free
    # there can be taken before the server binds it.
    top = min(max_port, _MAX_PORT - CLUSTER_BUS_OFFSET) if with_bus else max_port
    ephemeral = _ephemeral_range()

    def usable(p: int) -> bool:
        return p not in ephemeral and not (with_bus and p + CLUSTER_BUS_OFFSET in ephemeral)

    ports = [p for p in range(_MIN_PORT, top + 1) if usable(p)]
    return ports or list(range(_MIN_PORT, top + 1))


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers use it, so a port in TIME_WAIT counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(max_port: int = 55_000, *, with_bus: bool = False) -> int:
    """A random loopback port <= ``max_port`` that is free right now.

    ``with_bus`` also requires ``port + 10000`` to be free, for a Redis Cluster node (the
    default ``max_port`` keeps that bus port valid). Callers retry on "address in use":
    another process may still grab the port between this probe and the server's bind.
    """
    candidates = _candidates(max_port, with_bus)
    if not candidates:
        raise ValueError(f"no ports to choose from below {max_port}")
    rng = random.SystemRandom()
    for _ in range(_ATTEMPTS):
        port = rng.choice(candidates)
        if port_is_free(port) and (not with_bus or port_is_free(port + CLUSTER_BUS_OFFSET)):
            return port
    raise RuntimeError(f"no free loopback port found below {max_port}")
