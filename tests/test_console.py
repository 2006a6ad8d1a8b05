"""The console chat answers as the bot does in a private chat."""

from __future__ import annotations

import io
import os

from bot.console import Session, chat, read_message
from bot.core.matcher import get_matcher
from bot.core.replies import Markup
from bot.core.responder import Responder


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


def test_a_number_presses_the_button_shown_with_it() -> None:
    # /causes shows the four as buttons [1]..[4]; "4" opens cause 4 as tapping its button would.
    out = run("/causes\n4\n")
    assert "[4] 4. Context" in out and "What to do" in out.split("[4] 4. Context", 1)[1]


def test_a_triage_is_walked_with_numbers_to_a_fix() -> None:
    out = run("claude keeps cutting off mid answer\n5\n1\n")
    assert "Did Claude show a message?" in out and "Only in a long chat" in out
    assert "4. Context and usage limits" in out.rsplit("Only in a long chat", 1)[1]


def test_a_number_with_no_button_of_that_number_is_text() -> None:
    assert "couldn't recognise" in run("/causes\n9\n")


def pasted(text: str) -> list[str]:
    """The messages `read_message` makes of `text` arriving at once on a real file descriptor, as a paste does."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as w:
        w.write(text)
    messages = []
    with os.fdopen(read_fd) as r:
        while message := read_message(r, gather=True, pause=0.5):
            messages.append(message)
    return messages


def test_a_pasted_multi_line_error_is_one_message() -> None:
    [message] = pasted("  ⎿  API Error: 529 Overloaded\n  ⎿  Retrying in 4 seconds… (attempt 4/10)\n")
    assert message.count("\n") == 2 and "attempt 4/10" in message


def test_a_multi_line_paste_gets_one_answer() -> None:
    [message] = pasted("❯ fix the tests\n  ⎿  API Error: 529 Overloaded\n  ⎿  Retrying (attempt 4/10)\n")
    answer = Session(Responder(get_matcher(), Markup.PLAIN), "en").respond(message)
    assert answer is not None and answer.text.count("3. Capacity") == 1


def test_pasted_traditional_chinese_gets_a_traditional_answer_in_an_english_console() -> None:
    out = run("Claude 現在無法回應，服務暫時中斷\n", lang="en")
    assert "服務中斷" in out


def test_a_triage_asked_in_chinese_goes_on_in_chinese_in_an_english_console() -> None:
    out = run("claude 老是断\n5\n1\n", lang="en")
    assert "只在很长的对话里" in out and "4. 上下文和用量限制" in out
