"""The operator's loop end to end: 👍/👎 and "which was it?", misses kept masked for MISSES_DAYS, /forget, the
`misses` and `stats` commands, /stats for operators only, and nothing kept of group messages nobody addressed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

from bot.cli import main
from bot.conversation import Conversation
from bot.services.ledger import mask
from bot.services.sqlite_store import STORE_FILE
from tests.fakebotapi import FakeBotApi
from tests.test_faults import running, user

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
UNKNOWN = "zorblax quux 7741 sk-ant-api03-abcdefghijklmnop write to a.user@example.com"
ALICE = 6101
GROUP = -1001234567890


def feedback_buttons(call: object) -> list[str]:
    markup = getattr(call, "params", {}).get("reply_markup") or {}
    return [
        b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row if b["callback_data"][:3] == "fb:"
    ]


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """What the store holds, read from its file as an operator would."""
    with closing(sqlite3.connect(data_dir / STORE_FILE)) as db:
        return db.execute(sql).fetchall()


def counts(data_dir: Path) -> tuple[int, int]:
    """Misses kept, and texts kept for their feedback."""
    return rows(data_dir, "SELECT COUNT(*) FROM misses")[0][0], rows(data_dir, "SELECT COUNT(*) FROM recent_texts")[0][
        0
    ]  # type: ignore[return-value]


def test_keys_tokens_and_addresses_are_masked() -> None:
    masked = mask("key sk-ant-api03-AbCdEf123456 and sk-proj-abcdefghijklmnopqrst, Bearer abcdefghijklmnop, x@y.org")
    assert "AbCdEf" not in masked and "abcdefghijklmnopqrst" not in masked and "x@y.org" not in masked
    assert "sk-ant-***" in masked and "<email>" in masked and "Bearer ***" in masked


async def test_a_thumbs_down_with_the_right_cause_becomes_a_labelled_masked_miss(
    fake_bot_api: FakeBotApi, tmp_path: Path, capsys: object
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        api.push_update(api.make.private_message(UNKNOWN, user=user(api, ALICE)))
        answer = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == ALICE)
        assert "couldn't recognise" in answer.text
        _up, down = feedback_buttons(answer)
        mark = api.mark()
        api.push_update(api.make.callback_query(down, answer.result, user=user(api, ALICE)))
        asked = await api.wait_for_call("editMessageReplyMarkup", since=mark)
        capacity = next(d for d in feedback_buttons(asked) if d.endswith(":is:capacity"))
        mark = api.mark()
        api.push_update(api.make.callback_query(capacity, answer.result, user=user(api, ALICE)))
        thanks = await api.wait_for_call("answerCallbackQuery", lambda c: "Thanks" in str(c.params), since=mark)
        assert thanks.ok
        # The CLI runs its own event loop: from this test's loop, in a thread.
        assert await asyncio.to_thread(main, ["misses", "--data-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out  # type: ignore[attr-defined]
        assert "labelled: capacity" in out and "sk-ant-***" in out and "<email>" in out
        assert "abcdefghijklmnop" not in out and "a.user@example.com" not in out
        export = tmp_path / "misses.jsonl"
        assert await asyncio.to_thread(main, ["misses", "--data-dir", str(tmp_path), "--export", str(export)]) == 0
        [row] = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
        assert row["causes"] == ["capacity"] and "sk-ant-***" in row["text"]
        # /forget deletes what came from Alice.
        api.push_update(api.make.private_message("/forget", user=user(api, ALICE)))
        forgot = await api.wait_for_call("sendMessage", lambda c: c.ok and "Deleted" in c.text)
        assert "Deleted 2 text(s)" in forgot.text
        assert counts(tmp_path) == (0, 0)


async def test_misses_are_deleted_after_misses_days(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    async with running(api, tmp_path, misses_days=30) as app:
        doctor: Conversation = app.bot_data["conversation"]
        api.push_update(api.make.private_message(UNKNOWN, user=user(api, ALICE)))
        await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == ALICE)
        assert counts(tmp_path) == (1, 1)
        start = doctor.now()
        await doctor.store.purge(start + timedelta(days=29), doctor.misses_days)
        assert counts(tmp_path) == (1, 0)  # the kept text goes after two days, the miss after thirty
        await doctor.store.purge(start + timedelta(days=31), doctor.misses_days)
        assert counts(tmp_path) == (0, 0)


async def test_a_group_message_nobody_addressed_is_never_kept(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        api.push_update(api.make.group_message(CAPACITY, user=user(api, ALICE)))
        await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == GROUP)
        assert counts(tmp_path) == (0, 0)
        [(how, answer)] = rows(tmp_path, "SELECT how, answer FROM diagnoses")
        assert (how, answer) == ("auto", "capacity")


async def test_stats_are_for_operators_only(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    async with running(api, tmp_path, operator_ids=frozenset({4242})):
        api.push_update(api.make.private_message("/stats", user=user(api, 1111)))
        refused = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == 1111)
        assert "for the bot's operators" in refused.text
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 4242)))
        await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == 4242)
        mark = api.mark()
        api.push_update(api.make.private_message("/stats", user=user(api, 4242)))
        stats = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == 4242, since=mark)
        assert "answers: 1" in stats.text and "capacity 1" in stats.text


async def test_one_vote_per_user_per_answer_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bot.services.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path)
    now = datetime(2026, 12, 3, tzinfo=UTC)
    answer = await store.record("capacity", 0.9, lang="en", how="private", kb_version="v", now=now)
    assert answer is not None
    assert all([await store.vote(answer, 1, "up", now), await store.vote(answer, 1, "down", now)])
    assert await store.vote(answer, 2, "up", now)
    assert rows(tmp_path, "SELECT vote FROM feedback ORDER BY vote") == [("down",), ("up",)]
    assert not await store.vote(answer + 99, 1, "up", now)
    assert "capacity: 1 up, 1 down" in (await store.stats(now, 7)).format("v")
    await store.close()


async def test_a_problem_told_in_words_that_starts_a_triage_is_kept_as_a_miss(
    fake_bot_api: FakeBotApi, tmp_path: Path
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        api.push_update(api.make.private_message("claude keeps cutting off mid answer", user=user(api, ALICE)))
        question = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == ALICE)
        assert not feedback_buttons(question)  # the triage's own buttons, no 👍/👎
        assert counts(tmp_path) == (1, 1)


def test_misses_from_a_folder_the_bot_never_used_is_an_error_not_an_empty_record(tmp_path: Path) -> None:
    assert main(["misses", "--data-dir", str(tmp_path / "typo")]) == 1
    assert main(["stats", "--data-dir", str(tmp_path / "typo")]) == 1
    assert not (tmp_path / "typo").exists()
