"""The storage contract: every `Store` implementation behaves the same, one behaviour per test. A new store joins by
adding its factory to FACTORIES (and its id to `store_factory`'s params); the SQLite-only part is at the end."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.notify import diff
from bot.services.ledger import UNRECOGNISED
from bot.services.sqlite_store import STORE_FILE, SqliteStore
from bot.services.status import parse_summary
from bot.services.store import (
    ANSWER_TTL_SECONDS,
    INBOX_DONE_KEEP_SECONDS,
    MAX_ATTEMPTS,
    ChatSettings,
    StorageError,
    Store,
    Subscription,
    UserSettings,
    open_store,
)
from tests.fake_statuspage import MINOR_INCIDENT_ID, summary
from tests.pg import open_postgres_store


class Clock:
    """Wall-clock seconds that move only when a test moves them."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# A factory opens the store kept for `data_dir`: the same folder gives the same data (a restart, or a second
# replica), a new one an empty store. Stores date what the protocol does not date itself with `clock`.
StoreFactory = Callable[[Path, Clock], Awaitable[Store]]


async def _sqlite(data_dir: Path, clock: Clock) -> Store:
    return SqliteStore(data_dir, clock=clock)


FACTORIES: dict[str, StoreFactory] = {"sqlite": _sqlite, "postgres": open_postgres_store}


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "postgres":
        request.getfixturevalue("postgres")  # the test run's cluster (skips when PostgreSQL is not installed)
    return FACTORIES[request.param]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    opened = await store_factory(tmp_path, clock)
    yield opened
    await opened.close()


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# --- settings -------------------------------------------------------------------------------------


async def test_settings_have_defaults_and_round_trip(store: Store) -> None:
    assert await store.chat(-100) == ChatSettings(True, None)
    assert await store.user(7) == UserSettings(None, None)
    await store.set_autoreply(-100, False)
    await store.set_chat_lang(-100, "zh")
    await store.set_user_lang(7, "zh")
    await store.set_user_tz(7, "Europe/Berlin")
    assert await store.chat(-100) == ChatSettings(False, "zh")
    assert await store.user(7) == UserSettings("zh", "Europe/Berlin")
    await store.set_user_lang(7, None)
    assert await store.user(7) == UserSettings(None, "Europe/Berlin")


async def test_settings_survive_reopening(store_factory: StoreFactory, tmp_path: Path, clock: Clock) -> None:
    first = await store_factory(tmp_path, clock)
    await first.set_chat_lang(-100, "en")
    await first.close()
    again = await store_factory(tmp_path, clock)
    assert (await again.chat(-100)).lang == "en"
    await again.close()


# --- the answer map and chat lifecycle ------------------------------------------------------------


async def test_an_answer_is_found_until_its_ttl_passes(store: Store, clock: Clock) -> None:
    await store.remember_answer(-100, 10, 11)
    assert await store.answer_for(-100, 10) == 11
    assert await store.answer_for(-100, 12) is None
    clock.advance(ANSWER_TTL_SECONDS + 1)
    assert await store.answer_for(-100, 10) is None


async def test_forgetting_a_chat_drops_its_answers_and_subscription(store: Store) -> None:
    await store.remember_answer(-100, 10, 11)
    await store.subscribe(-100, "en")
    await store.forget_chat(-100)
    assert await store.answer_for(-100, 10) is None
    assert await store.subscriptions() == []


async def test_moving_a_chat_keeps_what_the_new_id_already_has(store: Store) -> None:
    await store.set_chat_lang(1, "zh")
    await store.set_autoreply(1, False)
    await store.set_chat_lang(2, "en")
    await store.remember_answer(1, 10, 11)
    await store.move_chat(1, 2)
    assert await store.chat(2) == ChatSettings(True, "en")
    assert await store.chat(1) == ChatSettings()
    assert await store.answer_for(1, 10) is None


async def test_moving_a_chat_carries_settings_and_subscription_to_a_new_id(store: Store) -> None:
    await store.set_autoreply(1, False)
    await store.subscribe(1, "zh", "Asia/Shanghai")
    await store.move_chat(1, 2)
    assert await store.chat(2) == ChatSettings(False, None)
    assert await store.subscriptions() == [Subscription(2, "zh", "Asia/Shanghai")]


# --- cooldowns ------------------------------------------------------------------------------------


async def test_a_cooldown_is_claimed_once_per_period(store: Store) -> None:
    assert await store.claim_cooldown(-100, "capacity", 1000.0, 600) is True
    assert await store.claim_cooldown(-100, "capacity", 1599.0, 600) is False
    assert await store.claim_cooldown(-100, "network", 1599.0, 600) is True
    assert await store.claim_cooldown(-200, "capacity", 1599.0, 600) is True
    assert await store.claim_cooldown(-100, "capacity", 1600.0, 600) is True
    # A refused claim does not move the mark.
    assert await store.claim_cooldown(-100, "capacity", 2199.0, 600) is False
    assert await store.claim_cooldown(-100, "capacity", 2200.0, 600) is True


async def test_many_concurrent_claims_of_one_key_give_exactly_one_true(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_cooldown(-100, "capacity", 1000.0 + n / 100, 600) for n in range(50)))
    assert results.count(True) == 1 and results.count(False) == 49


async def test_claims_from_two_replicas_at_once_give_exactly_one_true(
    store_factory: StoreFactory, tmp_path: Path, clock: Clock
) -> None:
    one, two = await store_factory(tmp_path, clock), await store_factory(tmp_path, clock)
    try:
        results = await asyncio.gather(
            *(s.claim_cooldown(-100, "capacity", 1000.0, 600) for _ in range(20) for s in (one, two))
        )
    finally:
        await one.close()
        await two.close()
    assert results.count(True) == 1


async def test_a_cooldown_survives_reopening(store_factory: StoreFactory, tmp_path: Path, clock: Clock) -> None:
    first = await store_factory(tmp_path, clock)
    assert await first.claim_cooldown(-100, "capacity", 1000.0, 600) is True
    await first.close()
    again = await store_factory(tmp_path, clock)
    assert await again.claim_cooldown(-100, "capacity", 1300.0, 600) is False
    await again.close()


# --- subscriptions --------------------------------------------------------------------------------


async def test_subscribing_twice_reports_it_and_refreshes_language_and_zone(store: Store, clock: Clock) -> None:
    assert await store.subscribe(1001, "en", "Europe/Berlin") is True
    clock.advance(1)
    assert await store.subscribe(-100, "zh") is True
    assert await store.subscribe(1001, "zh") is False
    assert await store.subscriptions() == [Subscription(1001, "zh", None), Subscription(-100, "zh", None)]
    assert await store.subscription_count() == 2


async def test_unsubscribe_reports_whether_there_was_a_subscription(store: Store) -> None:
    await store.subscribe(1001, "en")
    assert await store.unsubscribe(1001) is True
    assert await store.unsubscribe(1001) is False
    assert await store.subscription_count() == 0


# --- incidents last seen --------------------------------------------------------------------------


async def test_no_baseline_until_the_first_save_then_the_incidents_round_trip(store: Store) -> None:
    assert await store.seen_incidents() is None
    seen = diff(None, parse_summary(summary("minor")))[1]
    await store.save_seen(seen)
    assert await store.seen_incidents() == seen
    assert list(seen) == [MINOR_INCIDENT_ID]


async def test_an_empty_baseline_is_not_no_baseline(store: Store) -> None:
    await store.save_seen({})
    assert await store.seen_incidents() == {}
    await store.reset_seen()
    assert await store.seen_incidents() is None


# --- leases ---------------------------------------------------------------------------------------


async def test_a_lease_is_taken_renewed_and_refused_to_others(store: Store) -> None:
    assert await store.acquire_lease("status", "a", 30, 1000.0) is True
    assert await store.acquire_lease("status", "b", 30, 1010.0) is False
    assert await store.acquire_lease("status", "a", 30, 1020.0) is True
    # Renewed until 1050: b is still refused after the first term would have ended.
    assert await store.acquire_lease("status", "b", 30, 1040.0) is False
    assert await store.acquire_lease("other", "b", 30, 1040.0) is True


async def test_an_expired_lease_goes_to_the_next_holder(store: Store) -> None:
    await store.acquire_lease("status", "a", 30, 1000.0)
    assert await store.acquire_lease("status", "b", 30, 1030.0) is True
    assert await store.acquire_lease("status", "a", 30, 1031.0) is False


async def test_a_released_lease_is_free_and_only_its_holder_releases_it(store: Store) -> None:
    await store.acquire_lease("status", "a", 30, 1000.0)
    await store.release_lease("status", "b")
    assert await store.acquire_lease("status", "b", 30, 1001.0) is False
    await store.release_lease("status", "a")
    assert await store.acquire_lease("status", "b", 30, 1002.0) is True


async def test_concurrent_takers_of_a_free_lease_get_one_true(store: Store) -> None:
    results = await asyncio.gather(*(store.acquire_lease("status", f"h{n}", 30, 1000.0) for n in range(20)))
    assert results.count(True) == 1


# --- the update inbox -----------------------------------------------------------------------------


async def test_inbox_add_returns_only_the_new_ids(store: Store) -> None:
    assert await store.inbox_add([{"update_id": 2, "message": {"text": "b"}}, {"update_id": 1}]) == [2, 1]
    assert await store.inbox_add([{"update_id": 1}, {"update_id": 3}]) == [3]
    assert await store.inbox_add([]) == []
    assert await store.inbox_count() == 3


async def test_done_updates_are_forgotten(store: Store) -> None:
    await store.inbox_add([{"update_id": 1}, {"update_id": 2, "message": {"text": "日本"}}])
    await store.inbox_done([1])
    assert await store.inbox_count() == 1
    assert await store.inbox_pending() == [{"update_id": 2, "message": {"text": "日本"}}]


async def test_an_update_handled_already_is_not_new_when_telegram_sends_it_again(store: Store, clock: Clock) -> None:
    await store.inbox_add([{"update_id": 1}])
    await store.inbox_done([1])
    assert await store.inbox_add([{"update_id": 1}, {"update_id": 2}]) == [2]
    assert await store.inbox_pending() == [{"update_id": 2}]
    # After a day Telegram no longer has it: the id is forgotten for good.
    clock.advance(INBOX_DONE_KEEP_SECONDS + 1)
    await store.inbox_done([2])
    assert await store.inbox_add([{"update_id": 1}]) == [1]


async def test_pending_counts_attempts_and_drops_an_update_that_keeps_failing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.inbox_add([{"update_id": 2}, {"update_id": 1}])
    await store.inbox_done([2])
    for _start in range(MAX_ATTEMPTS):
        assert await store.inbox_pending() == [{"update_id": 1}]
    with caplog.at_level(logging.WARNING):
        assert await store.inbox_pending() == []
    assert await store.inbox_count() == 0
    assert any("update 1 was unfinished" in r.message for r in caplog.records)
    assert await store.inbox_add([{"update_id": 1}]) == []  # dropped counts as done


async def test_pending_with_stale_seconds_claims_only_stale_rows(store: Store, clock: Clock) -> None:
    await store.inbox_add([{"update_id": 1}], holder="a")
    clock.advance(100)
    await store.inbox_add([{"update_id": 2}], holder="b")
    assert await store.inbox_pending("c", stale_seconds=60) == [{"update_id": 1}]
    # Claimed just now by c: nobody else takes it until c's claim is stale in turn.
    assert await store.inbox_pending("d", stale_seconds=60) == []
    clock.advance(61)
    # A holder's own claims wait in its own queue, however long: it does not take them again.
    assert await store.inbox_pending("c", stale_seconds=60) == [{"update_id": 2}]
    clock.advance(61)
    assert await store.inbox_pending("d", stale_seconds=60) == [{"update_id": 1}, {"update_id": 2}]


async def test_renewed_claims_never_go_stale_and_a_renewal_keeps_to_its_own_rows(store: Store, clock: Clock) -> None:
    await store.inbox_add([{"update_id": 1}, {"update_id": 2}], holder="a")
    await store.inbox_add([{"update_id": 3}], holder="b")
    await store.inbox_done([2])
    for _sweep in range(5):
        clock.advance(30)
        await store.inbox_renew("a")
    # a renewed its claim every 30 s for 150 s (its update waited in its queue): still a's. b stopped renewing.
    assert await store.inbox_pending("c", stale_seconds=60) == [{"update_id": 3}]
    clock.advance(61)
    # b renewing now (it was alive, only slow) does not take back what c took over, nor date c's claim.
    await store.inbox_renew("b")
    # a stopped renewing (it died): its update goes too.
    assert await store.inbox_pending("d", stale_seconds=60) == [{"update_id": 1}, {"update_id": 3}]
    assert await store.inbox_count() == 2


async def test_the_inbox_survives_reopening(store_factory: StoreFactory, tmp_path: Path, clock: Clock) -> None:
    first = await store_factory(tmp_path, clock)
    await first.inbox_add([{"update_id": 5, "message": {"text": "x"}}])
    await first.close()
    again = await store_factory(tmp_path, clock)
    assert await again.inbox_pending() == [{"update_id": 5, "message": {"text": "x"}}]
    await again.close()


# --- the operator's record ------------------------------------------------------------------------


async def _record(store: Store, answer: str, *, text: str | None = None, user_id: int | None = None) -> int:
    diagnosis_id = await store.record(
        answer, 0.9, lang="en", how="private", kb_version="kb1", now=NOW, text=text, user_id=user_id
    )
    assert diagnosis_id is not None
    return diagnosis_id


async def test_an_unrecognised_text_is_kept_masked_as_a_miss(store: Store) -> None:
    await _record(store, "capacity", text="Overloaded", user_id=7)
    await _record(store, UNRECOGNISED, text="weird thing sk-ant-abcdef123456 from a@b.example", user_id=7)
    await _record(store, UNRECOGNISED)  # no text (an auto-answer): counted, nothing kept
    misses = await store.misses()
    assert [(m.text, m.reason, m.label, m.kb_version) for m in misses] == [
        ("weird thing sk-ant-*** from <email>", UNRECOGNISED, None, "kb1")
    ]
    assert misses[0].at == NOW


async def test_a_downvote_from_the_asker_keeps_a_miss_with_the_correction(store: Store) -> None:
    diagnosis_id = await _record(store, "capacity", text="my error", user_id=7)
    assert await store.vote(diagnosis_id, 8, "down", NOW) is True  # someone else: no miss
    assert await store.misses() == []
    assert await store.vote(diagnosis_id, 7, "down", NOW, correction="network") is True
    assert [(m.text, m.reason, m.label) for m in await store.misses()] == [("my error", "downvote", "network")]
    assert await store.vote(diagnosis_id + 100, 7, "up", NOW) is False


async def test_forgetting_a_user_deletes_their_texts_only(store: Store) -> None:
    await _record(store, UNRECOGNISED, text="mine", user_id=7)
    await _record(store, UNRECOGNISED, text="theirs", user_id=8)
    assert await store.forget_user(7) == 2  # the kept text and its miss
    assert [m.text for m in await store.misses()] == ["theirs"]
    assert await store.forget_user(7) == 0


async def test_purge_deletes_misses_and_texts_past_their_time(store: Store) -> None:
    await _record(store, UNRECOGNISED, text="old", user_id=7)
    assert await store.purge(NOW + timedelta(days=1), misses_days=30) == 0
    # Past RECENT_DAYS the kept text goes; the miss stays for its 30 days.
    assert await store.purge(NOW + timedelta(days=3), misses_days=30) == 1
    assert [m.text for m in await store.misses()] == ["old"]
    assert await store.purge(NOW + timedelta(days=31), misses_days=30) == 1
    assert await store.misses() == []


async def test_stats_count_answers_languages_votes_and_misses_of_the_period(store: Store) -> None:
    first = await _record(store, "capacity", text="a", user_id=7)
    await _record(store, "capacity")
    await _record(store, UNRECOGNISED, text="b", user_id=8)
    await store.vote(first, 7, "up", NOW)
    await store.vote(first, 9, "down", NOW)
    stats = await store.stats(NOW + timedelta(hours=1), days=7)
    assert (stats.total, stats.unrecognised, stats.misses) == (3, 1, 1)
    assert stats.by_lang == {"en": 3} and stats.by_how == {"private": 3}
    assert stats.by_day == {"2026-12-01": {"capacity": 2, UNRECOGNISED: 1}}
    assert dict(stats.votes["capacity"]) == {"up": 1, "down": 1}
    later = await store.stats(NOW + timedelta(days=8), days=7)
    assert (later.total, later.misses) == (0, 1)


async def test_a_healthy_store_says_so(store: Store) -> None:
    assert await store.healthy() is True


# --- SQLite only: the file, its history, and degrading ----------------------------------------------


async def test_open_store_without_a_database_url_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    class Settings:
        data_dir = tmp_path
        database_url = None

    store = await open_store(Settings())  # type: ignore[arg-type]
    assert isinstance(store, SqliteStore)
    await store.close()
    assert (tmp_path / STORE_FILE).is_file()


async def test_open_store_refuses_a_url_it_does_not_know(tmp_path: Path) -> None:
    class Settings:
        data_dir = tmp_path
        database_url = "mysql://user:pw@host/db"

    with pytest.raises(StorageError, match="postgresql://"):
        await open_store(Settings())  # type: ignore[arg-type]


def test_an_unusable_data_dir_is_one_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="is not usable") as err:
        SqliteStore(tmp_path / "file")
    assert "\n" not in str(err.value)


async def test_a_data_dir_from_the_previous_version_keeps_working(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / STORE_FILE)
    old.executescript(
        "CREATE TABLE chat_settings (chat_id INTEGER PRIMARY KEY, autoreply INTEGER NOT NULL DEFAULT 1, lang TEXT);"
        "CREATE TABLE user_settings (user_id INTEGER PRIMARY KEY, lang TEXT, tz TEXT);"
        "CREATE TABLE inbox (update_id INTEGER PRIMARY KEY, body TEXT NOT NULL, received REAL NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO ledger_meta VALUES ('salt', 'old-salt');"
        "INSERT INTO chat_settings VALUES (-100, 0, 'zh');"
        """INSERT INTO inbox VALUES (9, '{"update_id": 9}', 1.0, 1); PRAGMA user_version = 3;"""
    )
    old.commit()
    old.close()
    store = SqliteStore(tmp_path)
    assert await store.chat(-100) == ChatSettings(False, "zh")
    assert await store.inbox_pending("me") == [{"update_id": 9}]
    assert await store.inbox_add([{"update_id": 9}, {"update_id": 10}]) == [10]
    assert await store.acquire_lease("status", "me", 30, 1000.0) is True
    await store.close()
    # The salt is the old one: texts kept before the upgrade can still be forgotten by their owner.
    db = sqlite3.connect(tmp_path / STORE_FILE)
    assert db.execute("SELECT value FROM ledger_meta WHERE key = 'salt'").fetchone() == ("old-salt",)
    db.close()


async def _cap_writes(store: SqliteStore) -> None:
    """Give the writer's connection a page cap the database already fills: every write is then "disk full"."""
    await store.set_user_lang(7, "zh")

    def cap() -> None:
        db = store._db(1.0)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    await asyncio.get_running_loop().run_in_executor(store._writer, cap)


async def test_a_full_store_degrades_writes_to_none_and_reads_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path)
    await _cap_writes(store)
    with pytest.raises(StorageError):
        await store.inbox_add([{"update_id": n, "message": {"text": "x" * 2000}} for n in range(50)])
    assert any("full" in r.message and "carrying on without the store" in r.message for r in caplog.records)
    # While the store is known to be failing, writes are skipped at once and give None; reads go on.
    assert await store.record("capacity", 0.9, lang="en", how="auto", kb_version="k", now=NOW) is None
    assert await store.claim_cooldown(-100, "capacity", 1000.0, 600) is None
    assert await store.acquire_lease("status", "a", 30, 1000.0) is None
    assert await store.inbox_pending() == []
    with pytest.raises(StorageError, match="moments ago"):
        await store.inbox_add([{"update_id": 1}])
    assert await store.user(7) == UserSettings("zh", None)
    await store.close()


async def test_inbox_add_raises_when_the_updates_cannot_be_kept(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await _cap_writes(store)
    with pytest.raises(StorageError, match="full"):
        await store.inbox_add([{"update_id": n, "message": {"text": "x" * 2000}} for n in range(50)])
    await store.close()


async def test_a_locked_store_answers_reads_with_defaults_and_writes_with_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path)
    await store.set_chat_lang(-100, "zh")
    # Another process holds the write lock for the whole test (in WAL mode readers still read past it).
    locker = sqlite3.connect(tmp_path / STORE_FILE, isolation_level=None, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert await store.set_user_lang(7, "en") is None
        assert await store.subscribe(-100, "en") is None  # skipped at once: degraded
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert any("carrying on without the store" in r.message for r in caplog.records)
    assert await store.chat(-100) == ChatSettings(True, "zh")
    await store.close()


async def test_a_broken_store_reads_defaults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(tmp_path)
    await store.set_chat_lang(-100, "zh")
    await store.subscribe(-100, "zh")
    db = sqlite3.connect(tmp_path / STORE_FILE)
    db.executescript("DROP TABLE chat_settings; DROP TABLE subscriptions;")
    db.close()
    assert await store.chat(-100) == ChatSettings()
    assert await store.subscriptions() == []
    assert await store.subscription_count() == 0
    assert any("storage read chat failed" in r.message for r in caplog.records)
    await store.close()
