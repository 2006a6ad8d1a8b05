"""Per-chat, per-cause cooldown for answers nobody asked for, so a busy group is not spammed. The clock is the wall
clock: the marks are kept in the store too, so a restart does not repeat an auto-answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class Cooldown:
    """Allows one event per key every `seconds`; the clock is injectable for tests."""

    def __init__(self, seconds: float = 600.0, clock: Callable[[], float] = time.time, max_keys: int = 10_000):
        self.seconds = seconds
        self.clock = clock
        self.max_keys = max_keys
        self.last: dict[tuple[int, str], float] = {}

    def load(self, marks: Mapping[tuple[int, str], float]) -> None:
        """Take the marks kept in the store (after a restart)."""
        self.last.update(marks)

    def ready(self, chat_id: int, key: str) -> bool:
        """Whether an answer about `key` may go to `chat_id` now."""
        seen = self.last.get((chat_id, key))
        return seen is None or self.clock() - seen >= self.seconds

    def mark(self, chat_id: int, key: str) -> float:
        """Record that an answer about `key` went to `chat_id` now; returns the time recorded."""
        now = self.clock()
        if len(self.last) >= self.max_keys:
            # Forget expired keys; memory stays bounded however many groups the bot is in.
            self.last = {k: t for k, t in self.last.items() if now - t < self.seconds}
        self.last[(chat_id, key)] = now
        return now
