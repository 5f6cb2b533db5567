"""Routes: train orders and e-tickets (being built)."""

from __future__ import annotations

from reservation.api.routing import Route

ROUTES: list[Route] = []
