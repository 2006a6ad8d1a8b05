"""The store in PostgreSQL, for several replicas sharing one database (DATABASE_URL=postgresql://...): psycopg 3's
async driver over a connection pool. Every claim that replicas could race for is one statement: an update id is
taken by exactly one replica, a cooldown and a lease by exactly one holder.

Migrations run once at start, under a transaction-scoped advisory lock, so replicas starting together take turns
and the second finds nothing left to do. A database that is down or slow degrades the bot (reads give their
default, writes None, each logged); only `open` raises StorageError."""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.core.notify import SeenIncident
from bot.services.ledger import (
    DAY,
    RECENT_DAYS,
    UNRECOGNISED,
    Miss,
    Stats,
    mask,
    miss_of,
    new_salt,
    owner_key,
    stats_of,
)
from bot.services.store import (
    ANSWER_TTL_SECONDS,
    COOLDOWN_KEEP_SECONDS,
    INBOX_DONE_KEEP_SECONDS,
    MAX_ATTEMPTS,
    ChatSettings,
    StorageError,
    Subscription,
    UserSettings,
)

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
except ImportError:  # the `postgres` extra is not installed; `open` says so
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# One key for the migration lock, the same in every replica ("claude-d" as a number).
MIGRATION_LOCK = 0x636C617564652D64
# Each entry moves the schema one version on; append, never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE chat_settings (chat_id BIGINT PRIMARY KEY, autoreply BOOLEAN NOT NULL DEFAULT TRUE, lang TEXT);
    CREATE TABLE user_settings (user_id BIGINT PRIMARY KEY, lang TEXT, tz TEXT);
    CREATE TABLE answers (
        chat_id BIGINT NOT NULL, message_id BIGINT NOT NULL, answer_id BIGINT NOT NULL,
        created DOUBLE PRECISION NOT NULL, PRIMARY KEY (chat_id, message_id)
    );
    CREATE INDEX answers_created ON answers (created);
    CREATE TABLE subscriptions (
        chat_id BIGINT PRIMARY KEY, lang TEXT NOT NULL, tz TEXT, created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE seen_incidents (
        incident_id TEXT PRIMARY KEY, revision TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL,
        impact TEXT NOT NULL, started_at TEXT NOT NULL
    );
    CREATE TABLE status_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cooldowns (
        chat_id BIGINT NOT NULL, key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (chat_id, key)
    );
    CREATE INDEX cooldowns_at ON cooldowns (at);
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL);
    CREATE TABLE inbox (
        update_id BIGINT PRIMARY KEY, body TEXT NOT NULL, received DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, holder TEXT NOT NULL DEFAULT '', claimed DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE diagnoses (
        id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, answer TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL, lang TEXT NOT NULL, how TEXT NOT NULL, kb_version TEXT NOT NULL
    );
    CREATE INDEX diagnoses_at ON diagnoses (at);
    CREATE TABLE feedback (
        diagnosis_id BIGINT NOT NULL, voter TEXT NOT NULL, vote TEXT NOT NULL, correction TEXT,
        at DOUBLE PRECISION NOT NULL, PRIMARY KEY (diagnosis_id, voter)
    );
    CREATE TABLE recent_texts (
        diagnosis_id BIGINT PRIMARY KEY, owner TEXT NOT NULL, text TEXT NOT NULL, at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX recent_texts_owner ON recent_texts (owner);
    CREATE TABLE misses (
        id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, owner TEXT NOT NULL, text TEXT NOT NULL,
        reason TEXT NOT NULL, label TEXT, kb_version TEXT NOT NULL, diagnosis_id BIGINT UNIQUE
    );
    CREATE INDEX misses_owner ON misses (owner);
    """,
    # A handled update's id stays a day (done_at set, body emptied), so a copy sent again is not new.
    """
    ALTER TABLE inbox ADD COLUMN done_at DOUBLE PRECISION;
    CREATE INDEX inbox_done_at ON inbox (done_at);
    CREATE INDEX inbox_open ON inbox (update_id) WHERE done_at IS NULL;
    """,
)
# Connections kept per replica: enough for the update workers' short statements to rarely wait for one.
POOL_MIN = 2
POOL_MAX = 10
# A call waits this long for a free connection (or a reconnect) before it degrades.
WAIT_SECONDS = 2.0
# No statement runs longer than this: a stuck lock must not hold an update forever.
STATEMENT_TIMEOUT_MS = 10_000
# After a connection failure the store is left alone this long (calls degrade at once), so a burst of updates
# during an outage does not queue behind the pool's wait, one timeout each.
DEGRADED_SECONDS = 2.0
# Old answers, cooldown marks and handled update ids are pruned by a write at most this often (a delete per message
# would be waste).
PRUNE_EVERY = 60.0


# libpq also takes the password as a query parameter (postgresql://host/db?password=...).
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.I)


def masked_url(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***, for messages and logs."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # an unparseable port: hide everything between the scheme and the host
        return re.sub(r"//[^@/]*@", "//***@", url)


def _passwords(url: str) -> list[str]:
    found = [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url)]
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    # As written in the URL and percent-decoded, as the driver would have used it.
    return [form for p in (password, *found) if p and p != "***" for form in {p, unquote(p)}]


def _one_line(exc: BaseException, url: str) -> str:
    """The driver's message on one line, with the URL's password taken out wherever it appears."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for password in _passwords(url):
        text = text.replace(password, "***")
    return text


def _reads(default: Any) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """A read that gives `default` (logged) when the database fails or is out of reach."""

    def wrap(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(method)
        async def read(*args: P.args, **kwargs: P.kwargs) -> T:
            store: PostgresStore = args[0]  # type: ignore[assignment]
            if store.degraded:
                return default() if callable(default) else default
            try:
                return await method(*args, **kwargs)
            except psycopg.Error as exc:
                store.failed("read", method.__name__, exc)
                return default() if callable(default) else default

        return read

    return wrap


def _writes(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | None]]:
    """A write that gives None (logged) when the database fails or is out of reach."""

    @functools.wraps(method)
    async def write(*args: P.args, **kwargs: P.kwargs) -> T | None:
        store: PostgresStore = args[0]  # type: ignore[assignment]
        if store.degraded:
            log.debug("storage write %s skipped: the database failed moments ago", method.__name__)
            return None
        try:
            return await method(*args, **kwargs)
        except psycopg.Error as exc:
            store.failed("write", method.__name__, exc)
            return None

    return write


class PostgresStore:
    """Every `Store` method against a PostgreSQL database shared by any number of replicas."""

    def __init__(
        self, pool: AsyncConnectionPool, salt: str, where: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.where = where
        self._salt = salt
        self._degraded_until = 0.0
        self._pruned = {"answers": 0.0, "cooldowns": 0.0, "inbox": 0.0}

    @classmethod
    async def open(cls, url: str, *, clock: Callable[[], float] = time.time) -> PostgresStore:
        """Connect, migrate the schema (once, whichever replica comes first) and open the pool; StorageError with
        one line and no password when the database can't be reached or used. `clock` (wall-clock seconds) dates
        what the protocol does not date itself: answers, subscriptions and inbox claims."""
        where = masked_url(url)
        if psycopg is None:
            raise StorageError("DATABASE_URL needs the postgres extra: pip install 'claude-doctor[postgres]'")
        if not url.startswith(("postgresql://", "postgres://")):
            raise StorageError(f"DATABASE_URL must start with postgresql://, got {where!r}")
        try:
            # A first connection of its own, so a wrong address or password is told as the server tells it (the
            # pool would only time out) and the schema is ready before any update is taken.
            async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
                await _migrate(conn)
                salt = await _salt(conn)
            pool = AsyncConnectionPool(
                url,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                timeout=WAIT_SECONDS,
                kwargs={"autocommit": True, "connect_timeout": 10},
                configure=_configure,
                open=False,
                name="claude-doctor",
            )
            await pool.open(wait=True, timeout=30)
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"DATABASE_URL {where} is not usable: {_one_line(exc, url)}") from None
        log.info("store: PostgreSQL at %s", where)
        return cls(pool, salt, where, clock=clock)

    # --- degradation ------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Whether a connection failed moments ago (calls then degrade at once instead of waiting)."""
        return time.monotonic() < self._degraded_until

    def failed(self, kind: str, name: str, exc: BaseException) -> None:
        """Log a failed call; a lost or unreachable server makes the next calls degrade at once for a while."""
        if isinstance(exc, psycopg.OperationalError):
            if not self.degraded:
                log.warning(
                    "storage %s %s failed (%s); carrying on without the database for %.0f s",
                    kind,
                    name,
                    _one_line(exc, ""),
                    DEGRADED_SECONDS,
                )
            self._degraded_until = time.monotonic() + DEGRADED_SECONDS
        else:
            log.warning("storage %s %s failed: %s", kind, name, _one_line(exc, ""))

    def _due(self, what: str) -> bool:
        now = self.clock()
        if now - self._pruned[what] < PRUNE_EVERY:
            return False
        self._pruned[what] = now
        return True

    async def _fetchone(self, query: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> tuple[Any, ...] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def _fetchall(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _execute(self, query: str, params: tuple[Any, ...] = ()) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)
            return cur.rowcount

    # --- settings ---------------------------------------------------------------------------------

    @_reads(ChatSettings)
    async def chat(self, chat_id: int) -> ChatSettings:
        row = await self._fetchone("SELECT autoreply, lang FROM chat_settings WHERE chat_id = %s", (chat_id,))
        return ChatSettings(bool(row[0]), row[1]) if row else ChatSettings()

    @_writes
    async def set_autoreply(self, chat_id: int, on: bool) -> None:
        await self._execute(
            "INSERT INTO chat_settings (chat_id, autoreply) VALUES (%s, %s)"
            " ON CONFLICT (chat_id) DO UPDATE SET autoreply = EXCLUDED.autoreply",
            (chat_id, on),
        )

    @_writes
    async def set_chat_lang(self, chat_id: int, lang: str | None) -> None:
        await self._execute(
            "INSERT INTO chat_settings (chat_id, lang) VALUES (%s, %s)"
            " ON CONFLICT (chat_id) DO UPDATE SET lang = EXCLUDED.lang",
            (chat_id, lang),
        )

    @_reads(UserSettings)
    async def user(self, user_id: int) -> UserSettings:
        row = await self._fetchone("SELECT lang, tz FROM user_settings WHERE user_id = %s", (user_id,))
        return UserSettings(row[0], row[1]) if row else UserSettings()

    @_writes
    async def set_user_lang(self, user_id: int, lang: str | None) -> None:
        await self._execute(
            "INSERT INTO user_settings (user_id, lang) VALUES (%s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET lang = EXCLUDED.lang",
            (user_id, lang),
        )

    @_writes
    async def set_user_tz(self, user_id: int, tz: str | None) -> None:
        await self._execute(
            "INSERT INTO user_settings (user_id, tz) VALUES (%s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET tz = EXCLUDED.tz",
            (user_id, tz),
        )

    # --- the answer map and chat lifecycle --------------------------------------------------------

    @_writes
    async def remember_answer(self, chat_id: int, message_id: int, answer_id: int) -> None:
        now = self.clock()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO answers (chat_id, message_id, answer_id, created) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (chat_id, message_id) DO UPDATE SET answer_id = EXCLUDED.answer_id,"
                " created = EXCLUDED.created",
                (chat_id, message_id, answer_id, now),
            )
            if self._due("answers"):
                await conn.execute("DELETE FROM answers WHERE created < %s", (now - ANSWER_TTL_SECONDS,))

    @_reads(None)
    async def answer_for(self, chat_id: int, message_id: int) -> int | None:
        row = await self._fetchone(
            "SELECT answer_id FROM answers WHERE chat_id = %s AND message_id = %s AND created >= %s",
            (chat_id, message_id, self.clock() - ANSWER_TTL_SECONDS),
        )
        return int(row[0]) if row else None

    @_writes
    async def forget_chat(self, chat_id: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM answers WHERE chat_id = %s", (chat_id,))
            await conn.execute("DELETE FROM subscriptions WHERE chat_id = %s", (chat_id,))

    @_writes
    async def move_chat(self, old_id: int, new_id: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for table in ("chat_settings", "subscriptions"):
                # What the new id already has wins; the old id's row moves only into an empty place.
                await conn.execute(
                    f"UPDATE {table} SET chat_id = %s WHERE chat_id = %s"
                    f" AND NOT EXISTS (SELECT 1 FROM {table} WHERE chat_id = %s)",
                    (new_id, old_id, new_id),
                )
                await conn.execute(f"DELETE FROM {table} WHERE chat_id = %s", (old_id,))
            # The old group's messages can't be edited any more.
            await conn.execute("DELETE FROM answers WHERE chat_id = %s", (old_id,))

    # --- auto-answer cooldowns --------------------------------------------------------------------

    @_writes
    async def claim_cooldown(self, chat_id: int, key: str, now: float, seconds: float) -> bool | None:
        """One statement: the row is inserted, or updated only when its mark is at least `seconds` old; a replica
        racing for the same key waits on the row lock, then sees the fresh mark and gets no row back."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO cooldowns (chat_id, key, at) VALUES (%s, %s, %s)"
                " ON CONFLICT (chat_id, key) DO UPDATE SET at = EXCLUDED.at WHERE cooldowns.at <= %s"
                " RETURNING 1",
                (chat_id, key, now, now - seconds),
            )
            claimed = await cur.fetchone() is not None
            if claimed and self._due("cooldowns"):
                await conn.execute("DELETE FROM cooldowns WHERE at < %s", (now - COOLDOWN_KEEP_SECONDS,))
        return claimed

    # --- status subscriptions ---------------------------------------------------------------------

    @_writes
    async def subscribe(self, chat_id: int, lang: str, tz: str | None = None) -> bool | None:
        # xmax is 0 on a freshly inserted row version and set on one that ON CONFLICT updated.
        row = await self._fetchone(
            "INSERT INTO subscriptions (chat_id, lang, tz, created) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (chat_id) DO UPDATE SET lang = EXCLUDED.lang, tz = EXCLUDED.tz"
            " RETURNING (xmax = 0)",
            (chat_id, lang, tz, self.clock()),
        )
        return bool(row and row[0])

    @_writes
    async def unsubscribe(self, chat_id: int) -> bool | None:
        return await self._execute("DELETE FROM subscriptions WHERE chat_id = %s", (chat_id,)) > 0

    @_reads(list)
    async def subscriptions(self) -> list[Subscription]:
        rows = await self._fetchall("SELECT chat_id, lang, tz FROM subscriptions ORDER BY created, chat_id")
        return [Subscription(int(chat_id), lang, tz) for chat_id, lang, tz in rows]

    @_reads(0)
    async def subscription_count(self) -> int:
        row = await self._fetchone("SELECT COUNT(*) FROM subscriptions")
        return int(row[0]) if row else 0

    # --- incidents last seen ----------------------------------------------------------------------

    @_reads(None)
    async def seen_incidents(self) -> dict[str, SeenIncident] | None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT 1 FROM status_meta WHERE key = 'baseline'")
            if await cur.fetchone() is None:
                return None
            cur = await conn.execute("SELECT incident_id, revision, name, url, impact, started_at FROM seen_incidents")
            rows = await cur.fetchall()
        return {r[0]: SeenIncident(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows}

    @_writes
    async def save_seen(self, seen: Mapping[str, SeenIncident]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM seen_incidents")
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO seen_incidents (incident_id, revision, name, url, impact, started_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [(s.id, s.revision, s.name, s.url, s.impact, s.started_at.isoformat()) for s in seen.values()],
                )
            await conn.execute(
                "INSERT INTO status_meta (key, value) VALUES ('baseline', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(self.clock()),),
            )

    @_writes
    async def reset_seen(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM seen_incidents")
            await conn.execute("DELETE FROM status_meta WHERE key = 'baseline'")

    # --- leases -----------------------------------------------------------------------------------

    @_writes
    async def acquire_lease(self, name: str, holder: str, seconds: float, now: float) -> bool | None:
        """One statement: taken when free, renewed by its holder, taken over once expired."""
        row = await self._fetchone(
            "INSERT INTO leases (name, holder, expires) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires"
            " WHERE leases.holder = EXCLUDED.holder OR leases.expires <= %s"
            " RETURNING 1",
            (name, holder, now + seconds, now),
        )
        return row is not None

    @_writes
    async def release_lease(self, name: str, holder: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder))

    # --- the update inbox -------------------------------------------------------------------------

    async def inbox_add(self, updates: Iterable[Mapping[str, Any]], holder: str = "") -> list[int]:
        """One statement for the batch; ON CONFLICT DO NOTHING leaves an id another replica (or an earlier
        delivery) kept alone, and RETURNING names only the ones this call inserted. Raises StorageError."""
        ids: list[int] = []
        bodies: list[str] = []
        for update in updates:
            ids.append(int(update["update_id"]))
            bodies.append(json.dumps(update, ensure_ascii=False))
        if not ids:
            return []
        if self.degraded:
            raise StorageError("the update inbox was not written: the database failed moments ago")
        now = self.clock()
        try:
            rows = await self._fetchall(
                "INSERT INTO inbox (update_id, body, received, holder, claimed)"
                " SELECT u.id, u.body, %s, %s, %s FROM unnest(%s::bigint[], %s::text[]) AS u(id, body)"
                " ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
                (now, holder, now, ids, bodies),
            )
        except psycopg.Error as exc:
            self.failed("write", "inbox_add", exc)
            raise StorageError(f"the update inbox could not be written: {_one_line(exc, '')}") from exc
        new = {int(row[0]) for row in rows}
        return [i for i in ids if i in new]

    @_writes
    async def inbox_done(self, update_ids: Iterable[int]) -> None:
        ids = [int(i) for i in update_ids]
        if not ids:
            return
        now = self.clock()
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE inbox SET done_at = %s, body = '' WHERE update_id = ANY(%s)", (now, ids))
            if self._due("inbox"):
                await conn.execute("DELETE FROM inbox WHERE done_at < %s", (now - INBOX_DONE_KEEP_SECONDS,))

    @_reads(list)
    async def inbox_pending(self, holder: str = "", stale_seconds: float = 0.0) -> list[dict[str, Any]]:
        """SKIP LOCKED: two replicas claiming at once each take different rows, never the same one."""
        now = self.clock()
        async with self.pool.connection() as conn, conn.transaction():
            # At 0 every row is taken, whoever claimed it (one process starting again). Otherwise only other
            # holders' stale claims: this holder's own are in its queue, however long they have waited there.
            cur = await conn.execute(
                "WITH picked AS (SELECT update_id FROM inbox WHERE done_at IS NULL"
                " AND (%s OR (claimed <= %s AND holder <> %s))"
                " ORDER BY update_id FOR UPDATE SKIP LOCKED)"
                " UPDATE inbox SET attempts = inbox.attempts + 1, holder = %s, claimed = %s"
                " FROM picked WHERE inbox.update_id = picked.update_id"
                " RETURNING inbox.update_id, inbox.body, inbox.attempts",
                (stale_seconds <= 0, now - stale_seconds, holder, holder, now),
            )
            rows = sorted(await cur.fetchall())
            dropped = [int(r[0]) for r in rows if r[2] > MAX_ATTEMPTS]
            if dropped:
                # Dropped counts as done: a copy sent again must not start the same crash over.
                await conn.execute("UPDATE inbox SET done_at = %s, body = '' WHERE update_id = ANY(%s)", (now, dropped))
        for update_id in dropped:
            log.warning("update %s was unfinished at %d starts in a row; dropped", update_id, MAX_ATTEMPTS)
        return [json.loads(r[1]) for r in rows if r[2] <= MAX_ATTEMPTS]

    @_writes
    async def inbox_renew(self, holder: str) -> None:
        """SKIP LOCKED: a row locked right now is being marked done or taken over by another replica, and needs no
        renewal either way; never waiting on a lock, this cannot deadlock with those."""
        await self._execute(
            "WITH mine AS (SELECT update_id FROM inbox WHERE holder = %s AND done_at IS NULL FOR UPDATE SKIP LOCKED)"
            " UPDATE inbox SET claimed = %s FROM mine WHERE inbox.update_id = mine.update_id",
            (holder, self.clock()),
        )

    @_reads(0)
    async def inbox_count(self) -> int:
        row = await self._fetchone("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL")
        return int(row[0]) if row else 0

    # --- the operator's record --------------------------------------------------------------------

    @_writes
    async def record(
        self,
        answer: str,
        confidence: float,
        *,
        lang: str,
        how: str,
        kb_version: str,
        now: datetime,
        text: str | None = None,
        user_id: int | None = None,
    ) -> int | None:
        """One statement (one round trip, atomic by itself): the answer, and with a text its masked copy and, when
        nothing was recognised, its miss."""
        at = now.timestamp()
        keep = text is not None and user_id is not None
        owner = owner_key(self._salt, user_id) if user_id is not None else ""
        masked = mask(text) if text is not None else ""
        row = await self._fetchone(
            "WITH d AS (INSERT INTO diagnoses (at, answer, confidence, lang, how, kb_version)"
            " VALUES (%(at)s, %(answer)s, %(confidence)s, %(lang)s, %(how)s, %(kb)s) RETURNING id),"
            " t AS (INSERT INTO recent_texts (diagnosis_id, owner, text, at)"
            " SELECT id, %(owner)s, %(text)s, %(at)s FROM d WHERE %(keep)s),"
            " m AS (INSERT INTO misses (at, owner, text, reason, label, kb_version, diagnosis_id)"
            " SELECT %(at)s, %(owner)s, %(text)s, %(reason)s, NULL, %(kb)s, id FROM d WHERE %(miss)s)"
            " SELECT id FROM d",
            {
                "at": at,
                "answer": answer,
                "confidence": round(confidence, 3),
                "lang": lang,
                "how": how,
                "kb": kb_version,
                "owner": owner,
                "text": masked,
                "keep": keep,
                "reason": UNRECOGNISED,
                "miss": keep and answer == UNRECOGNISED,
            },
        )
        assert row is not None
        return int(row[0])

    @_writes
    async def vote(
        self, diagnosis_id: int, user_id: int, vote: str, now: datetime, correction: str | None = None
    ) -> bool | None:
        at = now.timestamp()
        voter = owner_key(self._salt, user_id)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT kb_version FROM diagnoses WHERE id = %s", (diagnosis_id,))
            row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute(
                "INSERT INTO feedback (diagnosis_id, voter, vote, correction, at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (diagnosis_id, voter) DO UPDATE SET vote = EXCLUDED.vote,"
                " correction = EXCLUDED.correction, at = EXCLUDED.at",
                (diagnosis_id, voter, vote, correction, at),
            )
            if vote == "down":
                cur = await conn.execute(
                    "SELECT owner, text FROM recent_texts WHERE diagnosis_id = %s", (diagnosis_id,)
                )
                recent = await cur.fetchone()
                # Only the sender's own 👎 keeps their text: nobody else can make it a miss.
                if recent is not None and recent[0] == voter:
                    await _miss(conn, diagnosis_id, voter, recent[1], "downvote", correction, row[0], at)
        return True

    @_writes
    async def forget_user(self, user_id: int) -> int | None:
        owner = owner_key(self._salt, user_id)
        async with self.pool.connection() as conn, conn.transaction():
            gone = (await conn.execute("DELETE FROM misses WHERE owner = %s", (owner,))).rowcount
            gone += (await conn.execute("DELETE FROM recent_texts WHERE owner = %s", (owner,))).rowcount
        return gone

    @_writes
    async def purge(self, now: datetime, misses_days: int) -> int | None:
        at = now.timestamp()
        async with self.pool.connection() as conn, conn.transaction():
            gone = (await conn.execute("DELETE FROM misses WHERE at < %s", (at - misses_days * DAY,))).rowcount
            gone += (await conn.execute("DELETE FROM recent_texts WHERE at < %s", (at - RECENT_DAYS * DAY,))).rowcount
        return gone

    @_reads(list)
    async def misses(self) -> list[Miss]:
        rows = await self._fetchall("SELECT id, at, text, reason, label, kb_version FROM misses ORDER BY at, id")
        return [miss_of((int(r[0]), r[1], r[2], r[3], r[4], r[5])) for r in rows]

    async def stats(self, now: datetime, days: int) -> Stats:
        since = now.timestamp() - days * DAY
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT at, answer, lang, how FROM diagnoses WHERE at >= %s", (since,))
                answers = await cur.fetchall()
                cur = await conn.execute(
                    "SELECT d.answer, f.vote, COUNT(*) FROM feedback f JOIN diagnoses d ON d.id = f.diagnosis_id"
                    " WHERE f.at >= %s GROUP BY d.answer, f.vote",
                    (since,),
                )
                votes = [(answer, vote, int(n)) for answer, vote, n in await cur.fetchall()]
                cur = await conn.execute("SELECT COUNT(*) FROM misses")
                row = await cur.fetchone()
        except psycopg.Error as exc:
            self.failed("read", "stats", exc)
            return Stats(days)
        return stats_of(days, answers, votes, int(row[0]) if row else 0)

    # --- life -------------------------------------------------------------------------------------

    async def healthy(self) -> bool:
        """A round trip to the server now (ignoring the degraded pause, which it ends when the answer comes)."""
        try:
            async with self.pool.connection(timeout=WAIT_SECONDS) as conn:
                await conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        self._degraded_until = 0.0
        return True

    async def close(self) -> None:
        await self.pool.close()


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Each pooled connection: statements bounded in time, and a name the server's activity view shows."""
    await conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    await conn.execute("SET application_name = 'claude-doctor'")


async def _migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    """Bring the schema up to date. The advisory lock is held until the transaction ends, so replicas that start
    together run this one after another, and each migration is applied by whichever gets there first."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        cur = await conn.execute("SELECT version FROM schema_version")
        row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StorageError(
                f"the database's schema is version {version}, newer than this bot's {len(MIGRATIONS)}: "
                "run the newer release"
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute(migration)
            log.info("store: schema migrated to version %d", number)
        if row is None:
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS),))
        elif version < len(MIGRATIONS):
            await conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))


async def _salt(conn: psycopg.AsyncConnection[Any]) -> str:
    """The store's salt for owner keys, made by the first replica that needs it and shared by all."""
    await conn.execute(
        "INSERT INTO ledger_meta (key, value) VALUES ('salt', %s) ON CONFLICT (key) DO NOTHING", (new_salt(),)
    )
    cur = await conn.execute("SELECT value FROM ledger_meta WHERE key = 'salt'")
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _miss(
    conn: psycopg.AsyncConnection[Any],
    diagnosis_id: int,
    owner: str,
    text: str,
    reason: str,
    label: str | None,
    kb_version: str,
    at: float,
) -> None:
    await conn.execute(
        "INSERT INTO misses (at, owner, text, reason, label, kb_version, diagnosis_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (diagnosis_id) DO UPDATE SET label = COALESCE(EXCLUDED.label, misses.label)",
        (at, owner, text, reason, label, kb_version, diagnosis_id),
    )
