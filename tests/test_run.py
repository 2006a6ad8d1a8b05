"""`claude-doctor run` and the bare command: every start-up failure is one clear line, and the token never leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakebotapi import FakeBotApi, find_free_port

ROOT = Path(__file__).resolve().parent.parent
GOOD_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("claude-doctor: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_run_without_a_token_says_so(tmp_path: Path) -> None:
    result = run(["run"], {}, tmp_path)
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in one_line_error(result)


def test_rejected_token_is_one_line(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "TELEGRAM_BASE_URL": fake_bot_api.base_url, "DATA_DIR": str(tmp_path)}
    result = run(["run"], env, tmp_path)
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in one_line_error(result)
    assert GOOD_TOKEN not in result.stderr + result.stdout


def test_unreachable_bot_api_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{find_free_port()}/bot"
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "TELEGRAM_BASE_URL": url, "DATA_DIR": str(tmp_path)}
    line = one_line_error(run(["run"], env, tmp_path))
    assert "cannot reach the Bot API at http://127.0.0.1:" in line and GOOD_TOKEN not in line


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "DATA_DIR": str(blocker / "data")}
    assert "is not usable" in one_line_error(run(["run"], env, tmp_path))


def test_broken_knowledge_base_stops_the_bot(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "x.yaml").write_text("kind: cause\nid: [\n")
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "KNOWLEDGE_DIR": str(kb), "DATA_DIR": str(tmp_path / "d")}
    result = run(["run"], env, tmp_path)
    assert "knowledge base is broken" in one_line_error(result)
    assert f"{kb / 'x.yaml'}:" in result.stderr


def test_a_bad_timing_stops_the_bot_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "DATA_DIR": str(tmp_path), "INBOX_STALE_SECONDS": "five minutes"}
    result = run(["run"], env, tmp_path)
    assert result.returncode == 2
    assert "INBOX_STALE_SECONDS must be a number of seconds" in one_line_error(result)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=\nLOG_LEVEL=LOUD\n")
    result = run(["run"], {}, tmp_path)
    assert "TELEGRAM_BOT_TOKEN is not set" in one_line_error(result)


def test_bare_command_without_token_opens_the_console_chat(tmp_path: Path) -> None:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli"],
        env=base,
        cwd=tmp_path,
        input="Due to unexpected capacity constraints, Claude is unable to respond\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "TELEGRAM_BOT_TOKEN" in result.stdout.splitlines()[0]
    assert "3. Capacity" in result.stdout


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_token_never_reaches_the_log(fake_bot_api: FakeBotApi, tmp_path: Path, level: str) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": fake_bot_api.token,
        "TELEGRAM_BASE_URL": fake_bot_api.base_url,
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": level,
        "STATUS_PAGE_URL": "",  # the 529 gets a diagnosis; its status line must not reach the real status page
    }
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env={**base, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fake_bot_api.push_update(fake_bot_api.make.private_message("API Error: 529 overloaded"))
        import asyncio

        asyncio.run(fake_bot_api.wait_for_call("sendMessage", timeout=30))
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert fake_bot_api.token not in out + err
    assert "running as @claude_doctor_bot" in err


def test_a_base_url_without_bot_says_so_without_the_token(tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": GOOD_TOKEN, "TELEGRAM_BASE_URL": "http://127.0.0.1:9", "DATA_DIR": str(tmp_path)}
    result = run(["run"], env, tmp_path)
    assert "TELEGRAM_BASE_URL must end in /bot" in one_line_error(result)
    assert GOOD_TOKEN not in result.stderr + result.stdout


def test_a_bot_api_answering_html_at_start_up_is_one_line(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    fake_bot_api.answer_raw("getMe", 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", times=5)
    env = {
        "TELEGRAM_BOT_TOKEN": fake_bot_api.token,
        "TELEGRAM_BASE_URL": fake_bot_api.base_url,
        "DATA_DIR": str(tmp_path),
    }
    result = run(["run"], env, tmp_path)
    line = one_line_error(result)
    assert "Bot API" in line and fake_bot_api.token not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
