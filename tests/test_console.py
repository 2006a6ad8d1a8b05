"""The console chat answers as the bot does in a private chat."""

from __future__ import annotations

import io

from bot.console import chat


def run(lines: str, lang: str = "en") -> str:
    out = io.StringIO()
    assert chat(io.StringIO(lines), out, lang=lang) == 0
    return out.getvalue()


def test_console_answers_a_pasted_capacity_error() -> None:
    out = run("Due to unexpected capacity constraints, Claude is unable to respond to your message.\n")
    assert "3. Capacity" in out and "What to do" in out


def test_console_says_how_to_connect_to_telegram() -> None:
    assert "TELEGRAM_BOT_TOKEN" in run("").splitlines()[0]


def test_console_commands_and_language_switch() -> None:
    out = run("/causes\n/lang zh\n/fix 1\n/quit\n/fix 2\n")
    assert "The four usual reasons" in out
    assert "网络异常" in out
    assert "服务中断：" not in out  # nothing after /quit


def test_console_answers_chinese_text_in_chinese() -> None:
    assert "上下文和用量限制" in run("对话太长了，Claude 提示超出长度限制\n")


def test_console_unknown_command() -> None:
    assert "Unknown command" in run("/frobnicate\n")
