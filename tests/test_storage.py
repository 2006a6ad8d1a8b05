"""The SQLite store: status subscriptions, the incidents last seen, time zones, and old databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.notify import diff
from bot.services.status import parse_summary
from bot.services.storage import Storage, Subscription
from tests.fake_statuspage import MINOR_INCIDENT_ID, summary


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    storage = Storage(tmp_path)
    yield storage
    storage.close()


def test_subscriptions_survive_reopening(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    assert store.subscribe(1001, "en", "Europe/Berlin") is True
    assert store.subscribe(-100, "zh") is True
    store.close()
    again = Storage(tmp_path)
    assert again.subscriptions() == [Subscription(1001, "en", "Europe/Berlin"), Subscription(-100, "zh", None)]
    again.close()


def test_subscribing_twice_reports_it_and_keeps_one_row(store: Storage) -> None:
    store.subscribe(1001, "en")
    assert store.subscribe(1001, "zh") is False
    assert store.subscriptions() == [Subscription(1001, "zh", None)]


def test_unsubscribe_reports_whether_there_was_a_subscription(store: Storage) -> None:
    store.subscribe(1001, "en")
    assert store.unsubscribe(1001) is True
    assert store.unsubscribe(1001) is False
    assert store.subscription_count() == 0


def test_forgetting_a_chat_drops_its_subscription(store: Storage) -> None:
    store.subscribe(-100, "en")
    store.forget_chat(-100)
    assert not store.is_subscribed(-100)


def test_moving_a_chat_keeps_what_the_new_id_already_has(store: Storage) -> None:
    store.set_chat_lang(1, "zh")
    store.set_chat_lang(2, "en")
    store.remember_answer(1, 10, 11)
    store.move_chat(1, 2)
    assert store.chat(2).lang == "en" and store.chat(1).lang is None
    assert store.answer_for(1, 10) is None


def test_no_baseline_until_the_first_save_then_the_incidents_round_trip(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    assert store.seen_incidents() is None
    seen = diff(None, parse_summary(summary("minor")))[1]
    store.save_seen(seen)
    store.close()
    again = Storage(tmp_path)
    assert again.seen_incidents() == seen
    assert list(seen) == [MINOR_INCIDENT_ID]
    again.close()


def test_an_empty_baseline_is_not_no_baseline(store: Storage) -> None:
    store.save_seen({})
    assert store.seen_incidents() == {}
    store.reset_seen()
    assert store.seen_incidents() is None


def test_user_time_zone_is_kept_beside_the_language(store: Storage) -> None:
    store.set_user_lang(7, "zh")
    store.set_user_tz(7, "Europe/Berlin")
    assert (store.user_lang(7), store.user_tz(7)) == ("zh", "Europe/Berlin")
    assert store.user_tz(8) is None


def test_a_database_from_before_subscriptions_opens_and_keeps_its_settings(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "claude-doctor.sqlite3")
    old.executescript(
        "CREATE TABLE chat_settings (chat_id INTEGER PRIMARY KEY, autoreply INTEGER NOT NULL DEFAULT 1, lang TEXT);"
        "CREATE TABLE user_settings (user_id INTEGER PRIMARY KEY, lang TEXT, tz TEXT);"
        "INSERT INTO chat_settings VALUES (-100, 0, 'zh'); PRAGMA user_version = 1;"
    )
    old.commit()
    old.close()
    store = Storage(tmp_path)
    assert store.chat(-100).autoreply is False
    assert store.subscribe(-100, "zh") is True
    store.close()


def test_the_inbox_keeps_updates_until_done_and_gives_up_on_one_that_keeps_killing_the_bot(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    store.inbox_add([{"update_id": 2, "message": {"text": "b"}}, {"update_id": 1}])
    store.inbox_add([{"update_id": 1}])  # Telegram may send one twice: kept once
    store.inbox_done([2])
    store.close()
    for _start in range(3):
        store = Storage(tmp_path)
        assert store.inbox_pending() == [{"update_id": 1}]
        store.close()
    store = Storage(tmp_path)
    assert store.inbox_pending() == []
    store.close()


def test_cooldowns_are_kept_and_old_ones_pruned(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    store.save_cooldown(-100, "capacity", 1_000.0)
    store.save_cooldown(-100, "network", 1_000_000.0)
    assert store.cooldowns_since(0) == {(-100, "network"): 1_000_000.0}
    store.close()


async def test_a_full_store_degrades_writes_to_a_warning_and_reads_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Storage(tmp_path)
    store.set_user_lang(7, "zh")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    # The writer thread's connection gets a page cap the database already fills: every write is "disk full".
    connect = store._connect

    def capped(timeout: float) -> sqlite3.Connection:
        conn = connect(timeout)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    store._connect = capped  # type: ignore[method-assign]
    rows = [{"update_id": n, "message": {"text": "x" * 2000}} for n in range(50)]
    assert await store.write(store.inbox_add, rows) is None
    assert any("full" in r.message and "carrying on without the store" in r.message for r in caplog.records)
    # Skipped at once while the store is known to be failing, and reads still answer.
    assert await store.write(store.set_user_lang, 8, "en") is None
    assert store.user_lang(7) == "zh"
    store.close()
