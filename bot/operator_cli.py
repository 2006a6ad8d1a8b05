"""`claude-doctor misses` and `claude-doctor stats`: the operator's view of the bot's record, read from the store
(SQLite in DATA_DIR, or DATABASE_URL's PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO, TypeVar

from rapidfuzz import fuzz

from bot.core.knowledge import knowledge_version
from bot.core.matcher import Matcher
from bot.core.normalize import clean
from bot.services.ledger import Miss
from bot.services.sqlite_store import STORE_FILE
from bot.services.store import StorageError, Store, open_store

# Misses at least this alike (token set ratio) are one group: the same error with other numbers or ids.
SAME_ERROR = 85.0
T = TypeVar("T")


@dataclass
class Group:
    """Misses that are the same error in other words or with other numbers."""

    first: Miss
    misses: list[Miss] = field(default_factory=list)


def group_misses(misses: list[Miss]) -> list[Group]:
    """Misses grouped by similarity, the most frequent group first."""
    groups: list[tuple[str, Group]] = []
    for miss in misses:
        key = clean(miss.text)[:2000]
        for other_key, group in groups:
            if fuzz.token_set_ratio(key, other_key) >= SAME_ERROR:
                group.misses.append(miss)
                break
        else:
            groups.append((key, Group(miss, [miss])))
    return sorted((g for _, g in groups), key=lambda g: (-len(g.misses), g.first.at))


def with_store(args: argparse.Namespace, use: Callable[[Store], Awaitable[T]]) -> T | None:
    """Open the bot's store, run `use` on it and close it; None after saying on stderr why it cannot be opened (a
    folder the bot never ran with is a mistyped path, not an empty record)."""
    settings = getattr(args, "settings", None)
    database_url = getattr(args, "database_url", None) or getattr(settings, "database_url", None)
    if database_url is None and not (Path(args.data_dir) / STORE_FILE).is_file():
        print(
            f"claude-doctor: no {STORE_FILE} in {args.data_dir}: point --data-dir (or DATA_DIR) at the bot's",
            file=sys.stderr,
        )
        return None
    settings: Any = SimpleNamespace(data_dir=Path(args.data_dir), database_url=database_url)

    async def run() -> T | None:
        try:
            store = await open_store(settings)
        except StorageError as exc:
            print(f"claude-doctor: {exc}", file=sys.stderr)
            return None
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_misses(args: argparse.Namespace, matcher: Matcher, out: TextIO | None = None) -> int:
    """`claude-doctor misses [--export FILE.jsonl]`."""
    out = out or sys.stdout
    kept = with_store(args, lambda store: store.misses())
    if kept is None:
        return 1
    misses = kept
    if args.export:
        with Path(args.export).open("w", encoding="utf-8") as fh:
            for miss in misses:
                row = {
                    # "?" until somebody labels it: eval refuses the file until then, naming the line.
                    "causes": [miss.label] if miss.label else ["?"],
                    "kind": "miss",
                    "text": miss.text,
                    "source": f"bot miss {miss.id} ({miss.reason}, {miss.at:%Y-%m-%d}, knowledge {miss.kb_version})",
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(misses)} miss(es) to {args.export}", file=out)
        return 0
    groups = group_misses(misses)
    print(f"{len(misses)} miss(es) in {len(groups)} group(s), the most frequent first", file=out)
    for group in groups:
        d = matcher.diagnose(group.first.text, threshold=0.0)
        closest = d.cause or d.known or "-"
        labels = sorted({m.label for m in group.misses if m.label})
        reasons = sorted({m.reason for m in group.misses})
        text = group.first.text.replace("\n", " / ")
        print(
            f"{len(group.misses):>4}  closest: {closest} ({d.confidence:.2f})  {'/'.join(reasons)}"
            f"{'  labelled: ' + ', '.join(labels) if labels else ''}\n      {text[:160]}",
            file=out,
        )
    return 0


def cmd_stats(args: argparse.Namespace, matcher: Matcher, out: TextIO | None = None) -> int:
    """`claude-doctor stats [--days N]`."""
    out = out or sys.stdout
    stats = with_store(args, lambda store: store.stats(datetime.now(UTC), args.days))
    if stats is None:
        return 1
    print(stats.format(knowledge_version(matcher.kb.directory)), file=out)
    return 0
