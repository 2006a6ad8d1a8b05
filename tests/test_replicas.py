"""Two replicas on one PostgreSQL database (issue 14): two `claude-doctor run --webhook` processes against the fake Bot
API and a fake status page, 2,000 updates split between them the way a load balancer would (a post that fails on one
goes to the other), and the replica polling the status page killed with SIGKILL in the middle, then started again.
The replicas' minutes (the poller's lease, the poll interval, when a dead replica's work is taken over) are seconds
here, set through their settings (STATUS_LEASE_SECONDS and the others, in `replicas` below).

What must hold: no update lost; an answer sent twice only for an update the killed replica had taken and not finished.
That is the bound, counted in the database at the kill: its inbox rows not yet done (at most its 64 workers' updates
plus those queued behind them; of these only one whose answer went out before the kill, and whose done mark did not,
can be answered again). One auto-answer per group and cause in the cooldown window, whichever replica saw the
message; one incident message per change per subscriber, with one poller at a time and the survivor taking over
within 1.5 leases."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bot.telegram.webhook import SECRET_HEADER
from tests.fake_statuspage import FakeStatuspage
from tests.fakebotapi import Call, FakeBotApi, find_free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "replica-Secret_42"
CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
NETWORK = "Request timed out. Check your internet connection and proxy settings"
CHATTER = ("morning all", "anyone tried the new model for poetry?", "lol", "see you at lunch", "thanks!")
UPDATES = 2000
# 300 people ask in private, once each: each is owed exactly one answer. The rest is group traffic, mostly answered
# by silence (Telegram's 30 messages a second per bot would make 2,000 answers a minute-long test).
PRIVATE = 300
GROUPS = 20
SUBSCRIBERS = (5001, 5002, 5003)
# Short enough that a takeover is seconds, long enough that a busy replica renews in time.
LEASE_SECONDS = 4.0
POLL_SECONDS = 1.0
# A replica takes over another's unfinished update once its claim has not been renewed for this long (at start, and
# at each sweep); a live replica renews its own claims at each sweep, however long they wait in its queue.
STALE_SECONDS = 10.0
SWEEP_SECONDS = 2.5
# Posts in flight at once, like Telegram's default max_connections of 40 to one webhook.
CONNECTIONS = 32
# The lease and the inbox take-over are seconds here; everything else has this long at most.
WAIT = 120.0


@dataclass
class Replica:
    """One bot process with its own port and DATA_DIR; `start` again after `kill` is a restart."""

    name: str
    api: FakeBotApi
    env: dict[str, str]
    folder: Path
    port: int = field(default_factory=find_free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"stderr-{self.starts}.log").open("wb")
        self.starts += 1
        env = {
            **self.env,
            "WEBHOOK_URL": self.hook,
            "WEBHOOK_SECRET": SECRET,
            "PORT": str(self.port),
            "DATA_DIR": str(self.folder),
        }
        with log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.replica_main", "run", "--webhook"],
                env=env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def ready(self) -> None:
        """Until this process has set its webhook (it serves by then); its stderr if it exits instead."""
        assert self.proc is not None
        proc = self.proc
        waiting = asyncio.ensure_future(
            self.api.wait_for_call("setWebhook", lambda c: c.ok and c["url"] == self.hook, since=0, timeout=60)
        )
        exited = asyncio.ensure_future(asyncio.to_thread(proc.wait))
        await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            raise AssertionError(f"{self.name} exited with {proc.returncode}:\n{self.stderr()[-3000:]}")
        exited.cancel()
        waiting.result()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def stderr(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("stderr-*.log")))


@contextmanager
def replicas(api: FakeBotApi, page: FakeStatuspage, database_url: str, folder: Path) -> Iterator[list[Replica]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_BASE_URL": api.base_url,
        "STATUS_PAGE_URL": page.base_url,
        "DATABASE_URL": database_url,
        "STATUS_POLL_SECONDS": str(POLL_SECONDS),
        "STATUS_LEASE_SECONDS": str(LEASE_SECONDS),
        "INBOX_STALE_SECONDS": str(STALE_SECONDS),
        "INBOX_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }
    both = [Replica(name, api, env, folder / name) for name in ("a", "b")]
    try:
        yield both
    finally:
        for replica in both:
            replica.stop()


class Connection:
    """One kept-alive HTTP/1.1 connection to a replica's webhook, posting one update at a time. (httpx spent more
    time managing its pool for 32 posts at once than the bot spent handling them.)"""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, update: dict[str, Any]) -> int:
        """The answer's status; OSError when the replica is gone (the connection is dropped then)."""
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            body = json.dumps(update).encode()
            head = (
                f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"{SECRET_HEADER}: {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            return status
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise OSError(f"replica on port {self.port}: {exc!r}") from exc

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Balancer:
    """Posts updates to the replicas in turn, CONNECTIONS at a time, as a load balancer in front of them would: a
    post that fails (the replica is dead, or answers an error) is tried on the other one, until one answers 200."""

    def __init__(self, targets: list[Replica]) -> None:
        self.targets = targets
        self.idle: asyncio.Queue[list[Connection]] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            self.idle.put_nowait([Connection(t.port) for t in targets])
        self.turn = itertools.count()
        self.rerouted = 0
        self.accepted: Counter[str] = Counter()

    async def post(self, update: dict[str, Any]) -> None:
        connections = await self.idle.get()
        try:
            first = next(self.turn)
            for attempt in range(40):
                n = (first + attempt) % len(self.targets)
                try:
                    status = await connections[n].post(update)
                except OSError:
                    status = 0
                if status == 200:
                    self.accepted[self.targets[n].name] += 1
                    return
                self.rerouted += 1
            raise AssertionError(f"no replica took update {update['update_id']}")
        finally:
            self.idle.put_nowait(connections)

    def close(self) -> None:
        while not self.idle.empty():
            for connection in self.idle.get_nowait():
                connection.close()


@asynccontextmanager
async def balancer(targets: list[Replica]) -> AsyncIterator[Balancer]:
    lb = Balancer(targets)
    try:
        yield lb
    finally:
        lb.close()


def workload(api: FakeBotApi) -> list[dict[str, Any]]:
    """PRIVATE private questions (one per person) and group traffic: in each group, chatter and the capacity and
    network errors from different people, in a fixed shuffled order."""
    updates: list[dict[str, Any]] = []
    for n in range(PRIVATE):
        user = api.make.user(100_000 + n, f"P{n}", username=None)
        updates.append(api.make.private_message(CAPACITY if n % 2 else NETWORK, user=user))
    for n in range(UPDATES - PRIVATE):
        group = api.make.group_chat(-100_900_000_000 - n % GROUPS, f"Group {n % GROUPS}")
        user = api.make.user(200_000 + n, f"G{n}", username=None)
        text = (CAPACITY, NETWORK, *CHATTER)[(n // GROUPS) % (2 + len(CHATTER))]
        updates.append(api.make.group_message(text, chat=group, user=user))
    # Private and group traffic mixed, the same way every run.
    order = sorted(range(len(updates)), key=lambda i: (i * 7919) % len(updates))
    mixed = [updates[i] for i in order]
    for update_id, update in enumerate(mixed, start=10_000):
        update["update_id"] = update_id
    return mixed


def remember(api: FakeBotApi, update: dict[str, Any]) -> None:
    """Tell the fake about a message posted straight to a replica, so an answer quoting it finds it."""
    with api._lock:
        api._remember_update(update)


async def scalar(url: str, query: str, *params: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    return row[0] if row else None


async def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> float:  # noqa: ASYNC109
    """Check `condition` (returning a bool, or an awaitable of one) until it holds; the seconds it took. A condition
    checked, not a nap taken: each check is a short database query or a look at the fake's calls."""
    start = time.monotonic()
    while not await _value(condition()):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def sends(api: FakeBotApi, chat_ids: set[int], since: int = 0) -> list[Call]:
    return [c for c in api.calls("sendMessage", since=since) if c.ok and c.chat_id in chat_ids]


async def test_two_replicas_share_one_database_and_survive_a_kill(
    fake_bot_api: FakeBotApi, page: FakeStatuspage, postgres_url: str, tmp_path: Path
) -> None:
    api = fake_bot_api
    lease_holder = "SELECT holder FROM leases WHERE name = 'status-poller' AND expires > EXTRACT(EPOCH FROM now())"
    with replicas(api, page, postgres_url, tmp_path) as (a, b):
        for replica in (a, b):
            replica.start()
        await asyncio.gather(a.ready(), b.ready())
        async with balancer([a, b]) as lb:
            # Three people subscribe to status news (one through each replica and one more) while all is well.
            for user_id in SUBSCRIBERS:
                update = api.make.private_message("/subscribe", user=api.make.user(user_id, f"S{user_id}"))
                update["update_id"] = user_id
                remember(api, update)
                await lb.post(update)
            subscribed = set(SUBSCRIBERS)
            await until(lambda: {c.chat_id for c in sends(api, subscribed)} == subscribed, "three subscriptions")
            mark = api.mark()

            updates = workload(api)
            for update in updates:
                remember(api, update)
            half = len(updates) // 2
            began = time.monotonic()
            await asyncio.gather(*(lb.post(u) for u in updates[:half]))

            # An incident opens: one message to each subscriber, from whichever replica polls.
            page.state = "minor"
            await until(lambda: len(sends(api, subscribed, mark)) >= 3, "the incident's first message")
            holder = await scalar(postgres_url, lease_holder)
            assert holder is not None, "nobody holds the status poller's lease"
            poller = a if f":{a.pid}:" in holder else b
            assert f":{poller.pid}:" in holder
            mark_news = len(sends(api, subscribed, mark))
            assert mark_news == 3, "one message about the new incident to each subscriber, no more"

            # The poller dies mid-run, with updates still arriving, and the incident moves on at once.
            survivor = b if poller is a else a
            taken = lb.accepted[poller.name]
            rest = asyncio.gather(*(lb.post(u) for u in updates[half:]))
            await until(lambda: lb.accepted[poller.name] >= taken + 150, "the poller taking more updates")
            # Sends stall for a moment (Telegram slow to answer), so the poller dies with answers in flight; the ones
            # it was sending die with it unsent, as a killed process's requests do.
            api.hold("sendMessage")
            await api.wait_for_held(20, timeout=WAIT)
            poller.kill()
            api.release("sendMessage")
            # What the dead replica had taken and not finished: the only updates that may be answered twice.
            at_risk = await scalar(
                postgres_url,
                "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL AND holder LIKE %s",
                f"%:{poller.pid}:%",
            )
            assert at_risk > 0, "the kill was meant to catch the poller with updates unfinished"
            page.state = "minor_update"

            async def survivor_polls() -> bool:
                return f":{survivor.pid}:" in (await scalar(postgres_url, lease_holder) or "")

            takeover = asyncio.ensure_future(until(survivor_polls, "the survivor taking the lease over"))
            announced = asyncio.ensure_future(
                until(lambda: len(sends(api, subscribed, mark)) >= 6, "news of the update")
            )
            await rest
            takeover_seconds, news_seconds = await takeover, await announced
            # The killed replica comes back (a new process, a new holder) and the incident ends.
            poller.start()
            await poller.ready()
            page.state = "ok"
            await until(lambda: len(sends(api, subscribed, mark)) >= 9, "the news that it is resolved")

            async def inbox_empty() -> bool:
                return await scalar(postgres_url, "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == 0

            await until(inbox_empty, "every update handled")
            elapsed = time.monotonic() - began
            private_chats = {u["message"]["chat"]["id"] for u in updates if u["message"]["chat"]["type"] == "private"}
            await until(lambda: private_chats <= {c.chat_id for c in sends(api, private_chats)}, "every answer sent")

    # Nothing lost; twice only within the bound.
    answers = Counter(c.chat_id for c in sends(api, private_chats))
    assert set(answers) == private_chats
    twice = sum(n - 1 for n in answers.values())
    assert twice <= at_risk, f"{twice} answers repeated, more than the {at_risk} updates in flight at the kill"
    # One auto-answer per group and cause in the cooldown window, across both replicas and the restart.
    groups = {u["message"]["chat"]["id"] for u in updates} - private_chats
    per_group = Counter(c.chat_id for c in sends(api, groups))
    assert per_group == dict.fromkeys(groups, 2), per_group
    # One message per change per subscriber: the incident opened, was updated, was resolved.
    news = Counter(c.chat_id for c in sends(api, subscribed, mark))
    assert news == dict.fromkeys(subscribed, 3), news
    # The lease expires at most one term after the dead poller's last renewal, and the others look every half term.
    assert takeover_seconds < 1.5 * LEASE_SECONDS + 5
    print(
        f"\nreplicas: {UPDATES} updates, accepted {dict(lb.accepted)}, rerouted {lb.rerouted}; in flight at the "
        f"kill {at_risk}, answered twice {twice}; lease taken over {takeover_seconds:.1f} s after the kill "
        f"(lease {LEASE_SECONDS:.0f} s), the change announced {news_seconds:.1f} s after it happened; all handled "
        f"{elapsed:.1f} s after the first post"
    )
