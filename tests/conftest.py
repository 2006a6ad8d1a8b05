"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_statuspage import FakeStatuspage
from tests.fakebotapi import FakeBotApi, find_free_port, post_update
from tests.pg import PgCluster, pg_cluster

PostUpdate = Callable[..., Awaitable[int]]
SHIPPED_KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    """A copy of the shipped knowledge base in a temporary folder, to break or extend."""
    target = tmp_path / "kb"
    shutil.copytree(SHIPPED_KNOWLEDGE, target)
    return target


@pytest.fixture
def fake_bot_api() -> Iterator[FakeBotApi]:
    """A fake Telegram Bot API on 127.0.0.1, fresh for each test.

    Point PTB at it with ``fake_bot_api.application_builder()``. Teardown fails the test if the
    fake itself hit an unexpected error, so a broken fake never passes silently.
    """
    server = FakeBotApi().start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.internal_errors, f"fake Bot API errors: {server.internal_errors}"


@pytest.fixture
def post_webhook_update() -> PostUpdate:
    """``await post_webhook_update(url, update_dict, secret_token=None) -> HTTP status``.

    POSTs JSON to a webhook the way Telegram does (async, so a webhook served by the test's own
    event loop can answer it).
    """

    async def post(url: str, update: dict[str, Any], secret_token: str | None = None) -> int:
        return await post_update(url, update, secret_token=secret_token)

    return post


@pytest.fixture
def free_port() -> int:
    """A free TCP port on 127.0.0.1 (e.g. for a webhook listener)."""
    return find_free_port()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables, which would send loopback requests elsewhere: tests stay on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def page() -> Iterator[FakeStatuspage]:
    """A fake Claude status page on 127.0.0.1 (all clear; switch with ``page.state = ...``)."""
    with FakeStatuspage() as fake:
        yield fake


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on loopback, one per test run (skips when PostgreSQL is not installed)."""
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres: PgCluster) -> str:
    """The URL of a fresh, empty database in that cluster, for this test alone."""
    return postgres.fresh_database()
