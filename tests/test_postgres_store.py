"""The PostgreSQL store where several replicas meet: each test opens two or more stores (each with its own pool, as
two processes would) on one fresh database and races them; plus start-up errors and a database that goes away."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from bot.services import postgres_store
from bot.services.postgres_store import MIGRATIONS, PostgresStore, masked_url
from bot.services.store import ChatSettings, StorageError, UserSettings
from tests.pg import PgCluster


async def replicas(url: str, n: int = 2) -> list[PostgresStore]:
    """`n` stores opened at the same moment, as replicas starting together (their migrations race)."""
    return list(await asyncio.gather(*(PostgresStore.open(url) for _ in range(n))))


async def close_all(stores: list[PostgresStore]) -> None:
    await asyncio.gather(*(s.close() for s in stores))


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = await replicas(postgres_url, 4)
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cur = await conn.execute("SELECT version FROM schema_version")
            assert await cur.fetchall() == [(len(MIGRATIONS),)]
        # And they share one salt, so /forget in one replica finds what another kept.
        assert len({s._salt for s in stores}) == 1
    finally:
        await close_all(stores)


async def test_one_cooldown_claim_wins_among_racing_replicas(postgres_url: str) -> None:
    stores = await replicas(postgres_url)
    try:
        now = time.time()
        claims = await asyncio.gather(*(s.claim_cooldown(-100, "capacity", now, 600) for s in stores * 10))
        assert claims.count(True) == 1
        assert claims.count(False) == 19
        # The next window opens exactly `seconds` after the mark, for one replica again.
        assert await stores[1].claim_cooldown(-100, "capacity", now + 599.9, 600) is False
        later = await asyncio.gather(*(s.claim_cooldown(-100, "capacity", now + 600, 600) for s in stores * 5))
        assert later.count(True) == 1
    finally:
        await close_all(stores)


async def test_an_update_posted_to_two_replicas_is_new_to_one_of_them(postgres_url: str) -> None:
    stores = await replicas(postgres_url)
    try:
        updates = [{"update_id": n, "message": {"text": f"n{n}"}} for n in range(1, 201)]
        first, second = await asyncio.gather(stores[0].inbox_add(updates, "a"), stores[1].inbox_add(updates, "b"))
        assert set(first).isdisjoint(second)
        assert sorted(first + second) == list(range(1, 201))
        assert await stores[0].inbox_count() == 200
    finally:
        await close_all(stores)


async def test_replicas_taking_over_stale_updates_never_take_the_same_one(postgres_url: str) -> None:
    stores = await replicas(postgres_url, 3)
    clock = [1000.0]
    for store in stores:
        store.clock = lambda: clock[0]
    try:
        await stores[0].inbox_add([{"update_id": n} for n in range(1, 301)], "dead")
        clock[0] += 60
        taken = await asyncio.gather(*(s.inbox_pending(f"r{i}", 30) for i, s in enumerate(stores)))
        ids = [u["update_id"] for batch in taken for u in batch]
        assert sorted(ids) == list(range(1, 301))  # all of them, each once
        # Freshly claimed: nobody takes them again until that claim is stale too.
        assert await stores[0].inbox_pending("r0", 30) == []
        # A replica's own claims are in its own queue, however long they wait there: a sweep leaves them be.
        clock[0] += 60
        assert len(await stores[1].inbox_pending("r1", 30)) == 300 - len(taken[1])  # r0's and r2's
        clock[0] += 60
        assert await stores[1].inbox_pending("r1", 30) == []
        assert len(await stores[0].inbox_pending("r0", 30)) == 300
    finally:
        await close_all(stores)


async def test_a_renewal_racing_a_takeover_and_done_marks_neither_waits_nor_fails(postgres_url: str) -> None:
    a, b = await replicas(postgres_url)
    clock = [1000.0]
    a.clock = b.clock = lambda: clock[0]
    try:
        for round in range(5):
            ids = range(round * 300 + 1, round * 300 + 301)
            await a.inbox_add([{"update_id": n} for n in ids], "a")
            clock[0] += 60  # a's sweep is late: its claims look stale to b
            _, taken, _ = await asyncio.gather(a.inbox_renew("a"), b.inbox_pending("b", 30), a.inbox_done(ids[::3]))
            assert not a.degraded and not b.degraded
            # Each row is b's (taken over), a's renewed, or done: none is left stale, none has two takers.
            assert await b.inbox_pending("c", 30) == []
            assert {u["update_id"] for u in taken}.isdisjoint(await still_held(postgres_url, "a"))
            await a.inbox_done(ids)  # handled, by whichever had it: the next round starts with an empty inbox
    finally:
        await close_all([a, b])


async def still_held(url: str, holder: str) -> set[int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT update_id FROM inbox WHERE holder = %s AND done_at IS NULL", (holder,))
        return {int(row[0]) for row in await cur.fetchall()}


async def test_one_lease_holder_at_a_time_and_a_takeover_after_expiry(postgres_url: str) -> None:
    stores = await replicas(postgres_url)
    try:
        now = time.time()
        got = await asyncio.gather(*(s.acquire_lease("status", f"r{i}", 30, now) for i, s in enumerate(stores * 5)))
        assert got.count(True) == 1
        holder = f"r{got.index(True)}"
        other = "r1" if holder == "r0" else "r0"
        assert await stores[0].acquire_lease("status", holder, 30, now + 20) is True  # renewed
        assert await stores[1].acquire_lease("status", other, 30, now + 49) is False
        assert await stores[1].acquire_lease("status", other, 30, now + 50) is True  # expired: taken over
    finally:
        await close_all(stores)


async def test_settings_written_by_one_replica_are_read_by_the_other(postgres_url: str) -> None:
    a, b = await replicas(postgres_url)
    try:
        await a.set_autoreply(-5, False)
        await a.set_user_tz(7, "Asia/Shanghai")
        assert await b.chat(-5) == ChatSettings(autoreply=False)
        assert await b.user(7) == UserSettings(tz="Asia/Shanghai")
        assert await a.subscribe(-5, "zh") is True
        assert await b.subscribe(-5, "en") is False
    finally:
        await close_all([a, b])


@pytest.mark.parametrize(
    "where",
    ["postgresql://bot:hunter2@127.0.0.1:{closed}/db", "postgresql://postgres:hunter2@127.0.0.1:{port}/no_such_db"],
    ids=["nothing listening", "no such database"],
)
async def test_a_bad_database_url_is_one_line_without_the_password(postgres: PgCluster, where: str) -> None:
    from tests.fakebotapi import find_free_port

    url = where.format(closed=find_free_port(), port=postgres.port)
    with pytest.raises(StorageError) as caught:
        await PostgresStore.open(url)
    message = str(caught.value)
    assert "hunter2" not in message
    assert "\n" not in message
    assert "***" in message


def test_masked_url_hides_only_the_password() -> None:
    assert (
        masked_url("postgresql://bot:s3cr%40t@db.example:5433/doctor") == "postgresql://bot:***@db.example:5433/doctor"
    )
    assert masked_url("postgresql://db/doctor") == "postgresql://db/doctor"
    assert "pw" not in masked_url("postgresql://u:pw@h:notaport/x")
    assert masked_url("postgresql://db/doctor?sslmode=require&password=s3cr3t") == (
        "postgresql://db/doctor?sslmode=require&password=***"
    )


async def test_a_schema_newer_than_the_bot_is_refused(postgres_url: str) -> None:
    await close_all(await replicas(postgres_url, 1))
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(StorageError, match="newer than this bot"):
        await PostgresStore.open(postgres_url)


async def test_a_database_that_goes_away_degrades_instead_of_raising(postgres: PgCluster, postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    try:
        await store.set_autoreply(-1, False)
        name = postgres_url.rsplit("/", 1)[1]
        # The database disappears under the running store: its pooled connections are cut and reconnects fail.
        async with await psycopg.AsyncConnection.connect(postgres.url(), autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        assert await store.chat(-1) == ChatSettings()  # the default, not an exception
        assert await store.set_chat_lang(-1, "en") is None
        assert await store.claim_cooldown(-1, "k", time.time(), 600) is None
        assert await store.acquire_lease("status", "r0", 30, time.time()) is None
        assert await store.subscriptions() == []
        assert await store.healthy() is False
        # Keeping an update is the one write that must say it failed: its sender is then not told "got it".
        with pytest.raises(StorageError):
            await store.inbox_add([{"update_id": 1}], "r0")
    finally:
        await store.close()


async def test_cut_connections_cost_one_call_then_the_pool_reconnects(postgres: PgCluster, postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    try:
        await store.set_chat_lang(-1, "zh")
        name = postgres_url.rsplit("/", 1)[1]
        # The server restarting, as far as this database's connections can tell.
        async with await psycopg.AsyncConnection.connect(postgres.url(), autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        assert await store.chat(-1) == ChatSettings()  # the default: that connection was gone
        # Each broken pooled connection fails once and is replaced; /healthz's check ends the pause when one answers.
        answers = [await store.healthy() for _ in range(5)]
        assert True in answers
        assert await store.chat(-1) == ChatSettings(lang="zh")
    finally:
        await store.close()


async def test_without_the_driver_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_store, "psycopg", None)
    with pytest.raises(StorageError, match=r"claude-doctor\[postgres\]"):
        await PostgresStore.open("postgresql://bot:pw@127.0.0.1/doctor")
