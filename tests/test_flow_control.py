"""The pieces behind "nobody held up": the input limits, the per-chat rate limiter and the per-chat ordering of the
update processor, each driven directly (no network, an injected clock where time matters)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Update
from telegram.error import NetworkError, RetryAfter

from bot.telegram import ratelimit
from bot.telegram.flood import FloodGate, Verdict
from bot.telegram.processor import ChatOrderedProcessor
from bot.telegram.ratelimit import ANSWERED, ChatRateLimiter
from tests.fakebotapi import FakeBotApi, UpdateFactory

BOT_ID = 7012345678
make = UpdateFactory(FakeBotApi())


def update(data: dict[str, Any], update_id: int = 1) -> Update:
    return Update.de_json({"update_id": update_id, **data}, None)


def private(user_id: int, text: str = "hello") -> Update:
    return update(make.private_message(text, user=make.user(user_id, "U", username=f"u{user_id}")))


def group(user_id: int, text: str) -> Update:
    return update(make.group_message(text, user=make.user(user_id, "U", username=f"u{user_id}")))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- input limits ------------------------------------------------------------------------------------


def test_a_flooding_user_is_told_once_then_ignored_until_the_bucket_refills() -> None:
    clock = Clock()
    gate = FloodGate(user_burst=3, user_rate=1.0, clock=clock)
    verdicts = [gate.check(private(1), BOT_ID, "claude_doctor_bot") for _ in range(6)]
    assert verdicts == [Verdict.OK] * 3 + [Verdict.WARN, Verdict.DROP, Verdict.DROP]
    # Another user is untouched.
    assert gate.check(private(2), BOT_ID, "claude_doctor_bot") is Verdict.OK
    clock.now += 1.0
    assert gate.check(private(1), BOT_ID, "claude_doctor_bot") is Verdict.OK
    # Over the limit again within the warning period: silence, no second "slow down".
    assert gate.check(private(1), BOT_ID, "claude_doctor_bot") is Verdict.DROP


def test_group_chatter_counts_against_the_group_not_the_user() -> None:
    gate = FloodGate(user_burst=2, user_rate=0.0, group_burst=5, group_rate=0.0, clock=Clock())
    chatter = [gate.check(group(1, f"just chatting {n}"), BOT_ID, "claude_doctor_bot") for n in range(5)]
    assert chatter == [Verdict.OK] * 5
    # The group's own budget is spent: even a command is dropped now, silently.
    assert gate.check(group(1, "/help"), BOT_ID, "claude_doctor_bot") is Verdict.DROP


def test_mentions_and_commands_in_a_group_count_against_the_user() -> None:
    gate = FloodGate(user_burst=2, user_rate=0.0, clock=Clock())
    asks = [gate.check(group(1, f"@claude_doctor_bot help {n}"), BOT_ID, "claude_doctor_bot") for n in range(3)]
    assert asks == [Verdict.OK, Verdict.OK, Verdict.WARN]


def test_inline_queries_are_not_limited() -> None:
    gate = FloodGate(user_burst=1, user_rate=0.0, clock=Clock())
    inline = update(make.inline_query("capacity"))
    assert {gate.check(inline, BOT_ID, "claude_doctor_bot") for _ in range(10)} == {Verdict.OK}


# --- the rate limiter ----------------------------------------------------------------------------------


async def call(limiter: ChatRateLimiter, callback: Any, chat_id: int | None, endpoint: str = "sendMessage") -> Any:
    data = {"chat_id": chat_id} if chat_id is not None else {}
    return await limiter.process_request(callback, (), {}, endpoint, data, None)


async def test_transient_failures_are_retried_and_the_answer_is_marked_sent() -> None:
    limiter = ChatRateLimiter(backoff=0.001)
    failures = [NetworkError("Internal Server Error (500)"), NetworkError("reset")]

    async def flaky() -> dict[str, Any]:
        if failures:
            raise failures.pop(0)
        return {"message_id": 1}

    ANSWERED.set(False)
    assert await call(limiter, flaky, 1) == {"message_id": 1}
    assert ANSWERED.get() is True


async def test_retries_are_bounded() -> None:
    limiter = ChatRateLimiter(retries=2, backoff=0.001)
    attempts = 0

    async def down() -> None:
        nonlocal attempts
        attempts += 1
        raise NetworkError("Bad Gateway")

    with pytest.raises(NetworkError):
        await call(limiter, down, 1)
    assert attempts == 3


async def test_a_long_flood_wait_in_one_chat_fails_that_chat_fast_and_leaves_others_alone() -> None:
    clock = Clock()
    limiter = ChatRateLimiter(clock=clock)

    async def flooded() -> None:
        raise RetryAfter(120)

    async def fine() -> bool:
        return True

    with pytest.raises(RetryAfter):
        await call(limiter, flooded, 1)
    # The chat's next send does not wait two minutes: it fails at once while Telegram refuses the chat.
    with pytest.raises(RetryAfter):
        await asyncio.wait_for(call(limiter, fine, 1), 1.0)
    assert await asyncio.wait_for(call(limiter, fine, 2), 1.0) is True
    clock.now += 121
    assert await call(limiter, fine, 1) is True


async def test_a_flood_wait_for_the_whole_bot_is_capped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ratelimit, "GLOBAL_WAIT_CAP", 0.01)
    limiter = ChatRateLimiter()
    answers = [RetryAfter(120)]

    async def once_flooded() -> bool:
        if answers:
            raise answers.pop()
        return True

    assert await asyncio.wait_for(call(limiter, once_flooded, None, "setMyCommands"), 2.0) is True
    assert any("flood wait of 120 s for the whole bot" in r.message for r in caplog.records)


# --- per-chat ordering ---------------------------------------------------------------------------------


async def test_each_chat_in_order_and_chats_side_by_side() -> None:
    processor = ChatOrderedProcessor(workers=8)
    log: list[tuple[int, int]] = []
    gates = {1: asyncio.Event(), 2: asyncio.Event()}

    async def handle(chat: int, n: int) -> None:
        if n == 0:
            await gates[chat].wait()
        log.append((chat, n))

    tasks = [
        asyncio.create_task(processor.process_update(private(chat, f"m{n}"), handle(chat, n)))
        for n in range(3)
        for chat in (1, 2)
    ]
    # Chat 1's first update is stuck; chat 2 goes first and its own order holds, and chat 1 follows in order.
    gates[2].set()
    await asyncio.wait_for(asyncio.gather(*(t for i, t in enumerate(tasks) if i % 2 == 1)), 5)
    assert log == [(2, 0), (2, 1), (2, 2)]
    gates[1].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert [n for chat, n in log if chat == 1] == [0, 1, 2]


async def test_drain_leaves_waiting_updates_alone_and_cancels_stragglers() -> None:
    processor = ChatOrderedProcessor(workers=1)
    started = asyncio.Event()
    ran: list[str] = []

    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    async def later() -> None:
        ran.append("later")

    first = asyncio.create_task(processor.process_update(private(1), stuck()))
    second = asyncio.create_task(processor.process_update(private(2), later()))
    await started.wait()
    assert await processor.drain(0.05) == 1
    await asyncio.gather(first, second, return_exceptions=True)
    assert ran == [] and first.cancelled()
