from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Real engine/router processes on loopback, all killed when the test ends."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()
