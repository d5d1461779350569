"""``url``: a fresh database per test — a SQLite file, and a PostgreSQL database when
``DECONSTRUCT_TEST_POSTGRES`` names a server (see ``any_storage`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def url(any_storage):
    return any_storage
