"""The three front ends (the CLI, the console chat and the bot) answer alike, through the one conversation layer:
the same language rule for a pasted error, and a knowledge base with a fifth cause and a third language (built in a
temporary folder by tests/kbfixture.py) taken by all three with no code change."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application

from bot.console import chat
from bot.core.knowledge import load_knowledge
from bot.core.matcher import Matcher, get_matcher
from bot.services.sqlite_store import SqliteStore
from bot.settings import Settings
from bot.telegram.app import _post_init, build_application
from tests.fakebotapi import Call, FakeBotApi, started_polling
from tests.kbfixture import BUTTONS_PER_ROW, FIFTH_ERROR, FIFTH_NAME, THIRD_LANG, THIRD_MARK, build_kb

ROOT = Path(__file__).resolve().parent.parent
TRADITIONAL = "Claude 現在無法回應，服務暫時中斷"
# Its answer is in Traditional characters (服務 and 中斷 both differ from their Simplified forms).
TRADITIONAL_MARK = "服務"
SIMPLIFIED_MARK = "服务"
ENGLISH = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
ENGLISH_MARK = "3. Capacity"


# --- the CLI ----------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """`claude-doctor ARGS` as a process, in an English locale unless `env` says otherwise; its stdout."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LC_ALL": "en_US.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_answers_pasted_traditional_chinese_in_traditional_from_an_english_locale() -> None:
    out = cli("diagnose", TRADITIONAL)
    assert TRADITIONAL_MARK in out and SIMPLIFIED_MARK not in out


def test_cli_answers_pasted_english_in_english_from_a_chinese_locale() -> None:
    assert ENGLISH_MARK in cli("diagnose", ENGLISH, env={"LC_ALL": "zh_CN.UTF-8"})


def test_cli_diagnoses_a_fifth_cause_and_speaks_a_third_language(tmp_path: Path) -> None:
    kb = build_kb(tmp_path)
    assert f"5. {FIFTH_NAME}" in cli("diagnose", FIFTH_ERROR, env={"KNOWLEDGE_DIR": str(kb)})
    french = cli("diagnose", "--lang", THIRD_LANG, FIFTH_ERROR, env={"KNOWLEDGE_DIR": str(kb)})
    assert f"5. {THIRD_MARK}" in french and french.startswith(THIRD_MARK)
    assert "5 causes" in cli("check-kb", str(kb))


# --- the console chat ----------------------------------------------------------------------------------


def console(lines: list[str], settings: Settings | None = None, lang: str | None = None) -> str:
    out = io.StringIO()
    assert chat(io.StringIO("\n".join(lines) + "\n"), out, lang=lang, settings=settings or Settings()) == 0
    return out.getvalue()


def test_console_answers_pasted_traditional_chinese_in_traditional_from_an_english_reader() -> None:
    out = console([TRADITIONAL], lang="en")
    assert TRADITIONAL_MARK in out and SIMPLIFIED_MARK not in out


def test_console_answers_pasted_english_in_english_for_a_chinese_reader() -> None:
    assert ENGLISH_MARK in console([ENGLISH], lang="zh")


def test_console_takes_a_fifth_cause_and_a_third_language(tmp_path: Path) -> None:
    settings = Settings(knowledge_dir=build_kb(tmp_path))
    out = console([FIFTH_ERROR, f"/lang {THIRD_LANG}", "/causes"], settings=settings)
    assert f"5. {FIFTH_NAME}" in out
    assert f"5. {THIRD_MARK}" in out


# --- the bot --------------------------------------------------------------------------------------------


@pytest.fixture
async def kb_bot(fake_bot_api: FakeBotApi, tmp_path: Path) -> AsyncIterator[tuple[FakeBotApi, Application]]:  # type: ignore[type-arg]
    """The bot on the fifth-cause, third-language knowledge base, polling the fake Bot API."""
    settings = Settings(
        token=fake_bot_api.token,
        base_url=fake_bot_api.base_url,
        base_file_url=fake_bot_api.base_file_url,
        data_dir=tmp_path / "data",
        workers=1,
        status_page_url="",
    )
    store = SqliteStore(tmp_path / "data")
    app = build_application(settings, Matcher(load_knowledge(build_kb(tmp_path))), store)
    async with started_polling(app):
        yield fake_bot_api, app
    await store.close()


async def say(api: FakeBotApi, text: str, lang: str = "en", user: int = 1001) -> Call:
    mark = api.mark()
    api.push_update(api.make.private_message(text, user=api.make.user(user, "U", language_code=lang)))
    return await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == user, since=mark)


def cause_rows(call: Call) -> list[list[str]]:
    markup: dict[str, Any] = call.params.get("reply_markup") or {}
    return [[b["callback_data"] for b in row] for row in markup.get("inline_keyboard", []) if row]


async def test_bot_takes_a_fifth_cause_and_a_third_language(kb_bot: tuple[FakeBotApi, Application]) -> None:  # type: ignore[type-arg]
    api, app = kb_bot
    assert f"5. {FIFTH_NAME}" in (await say(api, FIFTH_ERROR)).text
    causes = await say(api, "/causes", lang=THIRD_LANG)
    assert THIRD_MARK in causes.text and "5. " in causes.text
    rows = cause_rows(causes)
    assert sum(len(r) for r in rows) == 5 and max(len(r) for r in rows) == BUTTONS_PER_ROW
    await _post_init(app)
    menus = {c.params.get("language_code") for c in api.calls("setMyCommands")}
    assert THIRD_LANG in menus


async def test_bot_answers_pasted_traditional_chinese_in_traditional_from_an_english_user(
    fake_bot_api: FakeBotApi, tmp_path: Path
) -> None:
    settings = Settings(
        token=fake_bot_api.token,
        base_url=fake_bot_api.base_url,
        base_file_url=fake_bot_api.base_file_url,
        data_dir=tmp_path,
        workers=1,
        status_page_url="",
    )
    store = SqliteStore(tmp_path)
    async with started_polling(build_application(settings, get_matcher(), store)):
        answer = (await say(fake_bot_api, TRADITIONAL, lang="en")).text
        assert TRADITIONAL_MARK in answer and SIMPLIFIED_MARK not in answer
        assert ENGLISH_MARK in (await say(fake_bot_api, ENGLISH, lang="zh-hans", user=1002)).text
    await store.close()
