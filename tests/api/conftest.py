from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()
