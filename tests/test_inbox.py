"""The inbox's callers on the async store, driven directly (no network): getUpdates hands on only the updates the
inbox did not have and still confirms the others, the webhook queues only new ones, a restart replays what was
left, the processor marks updates done, and a store that fails lets updates through unkept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from telegram import Update
from telegram.request import HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.core.matcher import get_matcher
from bot.services.memory_store import MemoryStore
from bot.services.sqlite_store import SqliteStore
from bot.services.store import StorageError
from bot.settings import Settings
from bot.telegram.app import build_application
from bot.telegram.inbox import InboxRequest
from bot.telegram.processor import ChatOrderedProcessor
from bot.telegram.runner import Runtime, _sweep, accept_update, replay_inbox
from tests.fakebotapi import FakeBotApi, UpdateFactory

make = UpdateFactory(FakeBotApi())


def message(update_id: int, text: str = "hello") -> dict[str, Any]:
    update = make.private_message(text, user=make.user(1001, "U", username="u1001"))
    return {**update, "update_id": update_id}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path)
    yield opened
    await opened.close()


class Telegram:
    """Stands in for the Bot API behind InboxRequest: answers each getUpdates with the next batch and records the
    offset each one asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *batches: list[dict[str, Any]]) -> None:
        self.batches = list(batches)
        self.offsets: list[int] = []
        monkeypatch.setattr(HTTPXRequest, "do_request", self.answer)

    async def answer(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        data: RequestData = kwargs["request_data"]
        self.offsets.append(int(data.parameters.get("offset", 0)))
        batch = self.batches.pop(0) if self.batches else []
        return 200, json.dumps({"ok": True, "result": batch}).encode()


async def get_updates(request: InboxRequest, offset: int) -> list[int]:
    """One getUpdates through the request; the update ids handed on."""
    data = RequestData([RequestParameter.from_input("offset", offset), RequestParameter.from_input("timeout", 10)])
    _code, payload = await request.do_request(url="http://api/getUpdates", method="POST", request_data=data)
    return [u["update_id"] for u in json.loads(payload)["result"]]


async def test_get_updates_hands_on_only_new_updates_and_confirms_the_rest(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.inbox_add([message(11), message(12)])  # kept by the run before a crash, never confirmed
    telegram = Telegram(monkeypatch, [message(11), message(12)], [message(12), message(13)])
    request = InboxRequest(store, holder="me")
    assert await get_updates(request, 0) == []
    # python-telegram-bot saw nothing and asks from 0 again; the request confirms what the inbox holds.
    assert await get_updates(request, 0) == [13]
    assert await get_updates(request, 14) == []
    assert telegram.offsets == [0, 13, 14]
    assert await store.inbox_count() == 3


async def test_get_updates_keeps_a_batch_before_handing_it_on(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = message(21)
    Telegram(monkeypatch, [good, {"update_id": 22, "message": {"date": "yesterday"}}])
    request = InboxRequest(store, holder="me")
    assert await get_updates(request, 0) == [21, 22]
    # The unreadable one is kept as a bare id: skipped, but marked done like any other.
    assert await store.inbox_pending("me") == [good, {"update_id": 22}]


class FailingStore:
    """A store whose inbox can't be written."""

    async def inbox_add(self, updates: Iterable[Mapping[str, Any]], holder: str = "") -> list[int]:
        raise StorageError("disk full")


async def test_a_failing_store_lets_a_batch_through_unkept(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    Telegram(monkeypatch, [message(31), message(32)])
    request = InboxRequest(FailingStore(), holder="me")  # type: ignore[arg-type]
    assert await get_updates(request, 0) == [31, 32]
    assert any("could not be kept in the inbox (disk full)" in r.message for r in caplog.records)


def application(store: Any) -> Any:
    """Just what the runner's functions use of an Application: bot_data's runtime, the update queue, the bot."""
    runtime = Runtime(ChatOrderedProcessor(), InboxRequest(store, holder="me"), store)
    return SimpleNamespace(bot_data={"runtime": runtime}, update_queue=asyncio.Queue(), bot=None)


def queued(app: Any) -> list[int]:
    out = []
    while not app.update_queue.empty():
        out.append(app.update_queue.get_nowait().update_id)
    return out


async def test_a_webhook_update_sent_twice_is_queued_once(store: SqliteStore) -> None:
    app = application(store)
    assert await accept_update(app, message(41)) is True
    assert await accept_update(app, message(41)) is False
    await store.inbox_done([41])
    assert await accept_update(app, message(41)) is False  # handled already: still not new
    assert queued(app) == [41]


async def test_a_webhook_update_goes_through_when_the_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    app = application(FailingStore())
    assert await accept_update(app, message(51)) is True
    assert queued(app) == [51]


async def test_a_restart_replays_the_unfinished_updates_in_order(store: SqliteStore) -> None:
    await store.inbox_add([message(62), message(61), message(63)])
    await store.inbox_done([62])
    app = application(store)
    assert await replay_inbox(app) == 2
    assert queued(app) == [61, 63]


async def test_a_replica_replays_only_claims_gone_stale(tmp_path: Path) -> None:
    clock = SimpleNamespace(now=1000.0)
    store = SqliteStore(tmp_path, clock=lambda: clock.now)
    await store.inbox_add([message(71)], holder="dead")
    clock.now += 600
    await store.inbox_add([message(72)], holder="alive")
    app = application(store)
    app.bot_data["runtime"].replay_stale_seconds = 300
    assert await replay_inbox(app) == 1
    assert queued(app) == [71]
    await store.close()


async def test_the_sweep_renews_its_own_claims_and_takes_over_stale_ones(tmp_path: Path) -> None:
    clock = SimpleNamespace(now=1000.0)
    store = SqliteStore(tmp_path, clock=lambda: clock.now)
    await store.inbox_add([message(91)], holder="me")  # waiting in this replica's queue
    await store.inbox_add([message(92)], holder="dead")
    clock.now += 100
    app = application(store)
    runtime = app.bot_data["runtime"]
    runtime.replay_stale_seconds, runtime.sweep_seconds = 60, 0.01
    sweep = asyncio.create_task(_sweep(app))
    try:
        taken = await asyncio.wait_for(app.update_queue.get(), 10)
    finally:
        sweep.cancel()
    assert taken.update_id == 92
    # Both claims are this replica's and fresh: 91 renewed, 92 taken over.
    assert await store.inbox_pending("other", stale_seconds=60) == []
    await store.close()


def test_the_timings_in_the_settings_reach_the_runtime_and_the_notifier() -> None:
    timings = Settings(
        token="123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef",
        status_poll_seconds=1,
        status_lease_seconds=4,
        inbox_stale_seconds=10,
        inbox_sweep_seconds=2.5,
    )
    app = build_application(
        replace(timings, database_url="postgresql://db.example/doctor"), get_matcher(), MemoryStore()
    )
    runtime, notifier = app.bot_data["runtime"], app.bot_data["notifier"]
    assert (runtime.replay_stale_seconds, runtime.sweep_seconds) == (10, 2.5)
    assert notifier.lease_seconds == 4 and notifier.backoff.delay == 1
    # The page's cache never hides a change from the next poll.
    assert notifier.conversation.status is not None and notifier.conversation.status._ttl == 0.5
    # One process (no DATABASE_URL): every unfinished update is its own, taken at start; no sweep.
    assert build_application(timings, get_matcher(), MemoryStore()).bot_data["runtime"].replay_stale_seconds == 0


async def test_the_processor_marks_handled_updates_done(store: SqliteStore) -> None:
    await store.inbox_add([message(81), message(82)])
    processor = ChatOrderedProcessor(workers=4)
    processor.attach(None, store)  # type: ignore[arg-type]

    async def handle() -> None:
        return None

    await asyncio.gather(*(processor.process_update(Update.de_json(message(n), None), handle()) for n in (81, 82)))
    assert await store.inbox_count() == 0
