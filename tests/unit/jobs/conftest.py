"""Store fixtures: every store test runs on SQLite and, when reachable, on PostgreSQL in a throwaway schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localft.jobs.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    yield opened
    opened.close()
