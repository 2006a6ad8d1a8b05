"""The store in memory, for the console chat and the conversation layer's tests: the whole protocol, kept in dicts
for as long as the process runs and gone with it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bot.core.notify import SeenIncident
from bot.services.ledger import UNRECOGNISED, Miss, Stats, mask
from bot.services.store import ANSWER_TTL_SECONDS, MAX_ATTEMPTS, ChatSettings, Subscription, UserSettings


class MemoryStore:
    """Every `Store` method on plain dicts; one process, one event loop, so each call is atomic by itself."""

    def __init__(self) -> None:
        self.chats: dict[int, ChatSettings] = {}
        self.users: dict[int, UserSettings] = {}
        self.answers: dict[tuple[int, int], tuple[int, float]] = {}
        self.cooldowns: dict[tuple[int, str], float] = {}
        self.subs: dict[int, tuple[Subscription, float]] = {}
        self.seen: dict[str, SeenIncident] | None = None
        self.leases: dict[str, tuple[str, float]] = {}
        self.inbox: dict[int, dict[str, Any]] = {}
        self.attempts: dict[int, int] = {}
        self.diagnoses: list[tuple[float, str, str, str]] = []
        self.texts: dict[int, tuple[int, str, float]] = {}
        self.votes: dict[tuple[int, int], str] = {}
        self.kept_misses: list[Miss] = []

    async def chat(self, chat_id: int) -> ChatSettings:
        return self.chats.get(chat_id, ChatSettings())

    async def set_autoreply(self, chat_id: int, on: bool) -> None:
        self.chats[chat_id] = ChatSettings(on, self.chats.get(chat_id, ChatSettings()).lang)

    async def set_chat_lang(self, chat_id: int, lang: str | None) -> None:
        self.chats[chat_id] = ChatSettings(self.chats.get(chat_id, ChatSettings()).autoreply, lang)

    async def user(self, user_id: int) -> UserSettings:
        return self.users.get(user_id, UserSettings())

    async def set_user_lang(self, user_id: int, lang: str | None) -> None:
        self.users[user_id] = UserSettings(lang, self.users.get(user_id, UserSettings()).tz)

    async def set_user_tz(self, user_id: int, tz: str | None) -> None:
        self.users[user_id] = UserSettings(self.users.get(user_id, UserSettings()).lang, tz)

    async def remember_answer(self, chat_id: int, message_id: int, answer_id: int) -> None:
        self.answers[(chat_id, message_id)] = (answer_id, time.time())

    async def answer_for(self, chat_id: int, message_id: int) -> int | None:
        found = self.answers.get((chat_id, message_id))
        return found[0] if found and found[1] > time.time() - ANSWER_TTL_SECONDS else None

    async def forget_chat(self, chat_id: int) -> None:
        self.answers = {k: v for k, v in self.answers.items() if k[0] != chat_id}
        self.subs.pop(chat_id, None)

    async def move_chat(self, old_id: int, new_id: int) -> None:
        for table in (self.chats, self.subs):
            moved = table.pop(old_id, None)
            if moved is not None:
                table.setdefault(new_id, moved)  # type: ignore[arg-type]
        if new_id in self.subs:
            sub, at = self.subs[new_id]
            self.subs[new_id] = (Subscription(new_id, sub.lang, sub.tz), at)
        self.answers = {k: v for k, v in self.answers.items() if k[0] != old_id}

    async def claim_cooldown(self, chat_id: int, key: str, now: float, seconds: float) -> bool:
        last = self.cooldowns.get((chat_id, key))
        if last is not None and now - last < seconds:
            return False
        self.cooldowns[(chat_id, key)] = now
        return True

    async def subscribe(self, chat_id: int, lang: str, tz: str | None = None) -> bool | None:
        known = chat_id in self.subs
        at = self.subs[chat_id][1] if known else time.time()
        self.subs[chat_id] = (Subscription(chat_id, lang, tz), at)
        return not known

    async def unsubscribe(self, chat_id: int) -> bool | None:
        return self.subs.pop(chat_id, None) is not None

    async def subscriptions(self) -> list[Subscription]:
        return [s for s, _ in sorted(self.subs.values(), key=lambda item: (item[1], item[0].chat_id))]

    async def subscription_count(self) -> int:
        return len(self.subs)

    async def seen_incidents(self) -> dict[str, SeenIncident] | None:
        return dict(self.seen) if self.seen is not None else None

    async def save_seen(self, seen: Mapping[str, SeenIncident]) -> None:
        self.seen = dict(seen)

    async def reset_seen(self) -> None:
        self.seen = None

    async def acquire_lease(self, name: str, holder: str, seconds: float, now: float) -> bool:
        current = self.leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self.leases[name] = (holder, now + seconds)
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        if self.leases.get(name, ("", 0.0))[0] == holder:
            del self.leases[name]

    async def inbox_add(self, updates: Iterable[Mapping[str, Any]], holder: str = "") -> list[int]:
        new = []
        for update in updates:
            update_id = int(update["update_id"])
            if update_id not in self.inbox:
                self.inbox[update_id] = dict(update)
                new.append(update_id)
        return new

    async def inbox_done(self, update_ids: Iterable[int]) -> None:
        for update_id in update_ids:
            self.inbox.pop(int(update_id), None)

    async def inbox_pending(self, holder: str = "", stale_seconds: float = 0.0) -> list[dict[str, Any]]:
        pending = []
        for update_id in sorted(self.inbox):
            self.attempts[update_id] = self.attempts.get(update_id, 0) + 1
            if self.attempts[update_id] > MAX_ATTEMPTS:
                del self.inbox[update_id]
            else:
                pending.append(self.inbox[update_id])
        return pending

    async def inbox_renew(self, holder: str) -> None:
        """Nothing to renew: one process, whose claims nobody else takes."""

    async def inbox_count(self) -> int:
        return len(self.inbox)

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
        self.diagnoses.append((now.timestamp(), answer, lang, how))
        diagnosis_id = len(self.diagnoses)
        if text is not None and user_id is not None:
            self.texts[diagnosis_id] = (user_id, mask(text), now.timestamp())
            if answer == UNRECOGNISED:
                self.kept_misses.append(Miss(diagnosis_id, now, mask(text), UNRECOGNISED, None, kb_version))
        return diagnosis_id

    async def vote(
        self, diagnosis_id: int, user_id: int, vote: str, now: datetime, correction: str | None = None
    ) -> bool | None:
        if not 0 < diagnosis_id <= len(self.diagnoses):
            return False
        self.votes[(diagnosis_id, user_id)] = vote
        return True

    async def forget_user(self, user_id: int) -> int | None:
        mine = [k for k, (owner, _, _) in self.texts.items() if owner == user_id]
        for key in mine:
            del self.texts[key]
        return len(mine)

    async def purge(self, now: datetime, misses_days: int) -> int | None:
        return 0

    async def misses(self) -> list[Miss]:
        return list(self.kept_misses)

    async def stats(self, now: datetime, days: int) -> Stats:
        stats = Stats(days)
        for _, answer, lang, how in self.diagnoses:
            stats.by_lang[lang] += 1
            stats.by_how[how] += 1
            stats.total += 1
            stats.unrecognised += answer == UNRECOGNISED
        return stats

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None
