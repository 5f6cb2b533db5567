"""A vaccination site with its staff key, on top of the shared ``api`` fixture."""

from __future__ import annotations

import pytest

from tests.api_fixture import Api
from tests.vaccine.support import Site, make_site


@pytest.fixture
async def site(api: Api) -> Site:
    return await make_site(api, "vx-tianhe-1")
