"""Benchmark: updates handled per second through the real Application (handlers, responder, matcher, SQLite),
with a recording request object in place of HTTP so only the bot's own work is timed.

Run: .venv/bin/python benchmarks/bench_bot.py [--updates N] [--pipeline] [--store postgres [--database-url URL]]
The rate limiter is left out: it exists to hold sends to Telegram's ~30 messages/s, which is what we measure against.
--pipeline sends the updates the way the running bot takes them: kept in the inbox, then through the per-chat update
processor (64 workers, input limits off: the benchmark's 50 users would trip them), each marked done once handled.
--store postgres runs the same again on PostgreSQL after SQLite, in the same process, and prints both: on the
database at --database-url (its tables get the benchmark's rows), else on a throwaway local cluster started with
Debian's postgresql package and the server's default durability (fsync and synchronous commit on).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationBuilder, Defaults
from telegram.request import BaseRequest, RequestData

from bot.conversation import Conversation
from bot.core.matcher import get_matcher
from bot.core.replies import Markup
from bot.core.responder import Responder
from bot.services.postgres_store import PostgresStore
from bot.services.sqlite_store import SqliteStore
from bot.services.store import Store
from bot.telegram.handlers import register
from bot.telegram.processor import ChatOrderedProcessor

BOT = {"id": 7012345678, "is_bot": True, "first_name": "Doctor", "username": "claude_doctor_bot",
       "can_join_groups": True, "can_read_all_group_messages": True, "supports_inline_queries": True}  # fmt: skip
TEXTS = [
    "Due to unexpected capacity constraints, Claude is unable to respond to your message.",
    'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    "我们无法连接到Claude。请检查你的网络连接并重试。",
    "Your message will exceed the length limit for this chat.",
    "good morning everyone, anyone tried the new model?",
    "今天下班一起吃饭吗",
    "/causes",
    "/fix 2",
]


class RecordingRequest(BaseRequest):
    """Answers every Bot API call at once with a plausible result and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.ids = itertools.count(1)

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        self.calls += 1
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        if name == "getMe":
            result: Any = BOT
        elif name in ("sendMessage", "editMessageText"):
            chat_id = int(params.get("chat_id", 1))
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            result = {"message_id": next(self.ids), "date": 0, "chat": chat, "text": params.get("text", "")}
        else:
            result = True
        return 200, json.dumps({"ok": True, "result": result}).encode()


def updates(count: int) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        text = TEXTS[n % len(TEXTS)]
        group = n % 2 == 1
        chat = (
            {"id": -100123, "type": "supergroup", "title": "g"} if group else {"id": 1000 + n % 50, "type": "private"}
        )
        sender = {"id": 1000 + n % 50, "is_bot": False, "first_name": "U", "language_code": "en"}
        message: dict[str, Any] = {"message_id": n + 1, "date": 0, "chat": chat, "text": text, "from": sender}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        out.append({"update_id": n + 1, "message": message})
    return out


async def main(count: int, pipeline: bool, stores: list[str], database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await measure("sqlite", SqliteStore(Path(tmp)), count, pipeline)
    if "postgres" in stores:
        with postgres_url(database_url) as url:
            await measure("postgres", await PostgresStore.open(url), count, pipeline)
    print(f"peak memory (RSS):   {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    """The database to measure on: `given`, else an empty one in a throwaway cluster of the tests' kind."""
    if given:
        yield given
        return
    # tests/pg.py starts Debian's server in a temporary folder; the repository root makes `tests` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import Unavailable, throwaway_cluster

    try:
        with throwaway_cluster(durable=True) as cluster:
            yield cluster.fresh_database("bench")
    except Unavailable as exc:
        raise SystemExit(f"--store postgres: {exc}; or give --database-url") from None


async def measure(name: str, storage: Store, count: int, pipeline: bool) -> None:
    """Handle `count` updates through the Application on `storage` and print the rate."""
    request = RecordingRequest()
    builder = (
        ApplicationBuilder()
        .token("123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")
        .request(request)
        .get_updates_request(RecordingRequest())
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
    )
    processor = ChatOrderedProcessor(workers=64)
    if pipeline:
        builder = builder.concurrent_updates(processor)
    app = builder.build()
    processor.attach(app, storage)
    app.bot_data["conversation"] = Conversation(Responder(get_matcher(), Markup.HTML), storage)
    register(app)
    await app.initialize()
    raw = updates(count)
    batch = [Update.de_json(u, app.bot) for u in raw]
    start = time.perf_counter()
    if pipeline:
        await app.start()
        # As the getUpdates connection does: a batch of 100 kept before it is handed on.
        for n in range(0, count, 100):
            await storage.inbox_add(raw[n : n + 100])
            for update in batch[n : n + 100]:
                await app.update_queue.put(update)
        await app.update_queue.join()
        await app.stop()
    else:
        for update in batch:
            await app.process_update(update)
    elapsed = time.perf_counter() - start
    left = await storage.inbox_count()
    await app.shutdown()
    await storage.close()
    print(f"[{name}]")
    if pipeline:
        print(f"left in the inbox:   {left}")
    print(f"updates handled:     {count} in {elapsed:.2f} s -> {count / elapsed:,.0f} updates/s")
    print(f"Bot API calls made:  {request.calls - 1} (private errors, commands, group auto-answers)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--pipeline", action="store_true", help="through the inbox and the per-chat processor")
    parser.add_argument(
        "--store", choices=["sqlite", "postgres"], default="sqlite", help="postgres: PostgreSQL too, after SQLite"
    )
    parser.add_argument(
        "--database-url", help="the PostgreSQL database for --store postgres (default: a throwaway one)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.updates, args.pipeline, [args.store], args.database_url))
