"""Fault injection: the real bot (as a process, or the real Application in the test's loop) against the fake Bot
API with Telegram's offset semantics (a getUpdates confirms every update below its offset, for good), with crashes,
stops, flood waits, server errors, a revoked token, unreadable updates and hostile webhook posts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from telegram.ext import Application

from bot.core.knowledge import load_knowledge
from bot.core.matcher import get_matcher
from bot.services.sqlite_store import SqliteStore
from bot.settings import Settings
from bot.telegram.app import build_application
from bot.telegram.runner import runtime_of
from tests.fakebotapi import UNAUTHORIZED, ApiError, FakeBotApi, find_free_port, flood, started_polling

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
APOLOGY = "Sorry"
GROUP = -1001234567890
SLOW_DOWN = load_knowledge().text("slow_down", "en")


# --- helpers ------------------------------------------------------------------------------------


@contextmanager
def bot_process(api: FakeBotApi, data_dir: Path, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`claude-doctor run` as its own process against the fake; stderr goes to data_dir/stderr-N.log."""
    n = len(list(data_dir.glob("stderr-*.log")))
    log_path = data_dir / f"stderr-{n}.log"
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_BASE_URL": api.base_url,
        "DATA_DIR": str(data_dir),
        "STATUS_PAGE_URL": "",  # never the real status page
    }
    with log_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", *args],
            env={**base, **env},
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


async def started(proc: subprocess.Popen[str], ready: Awaitable[T], data_dir: Path) -> T:
    """Wait for a sign that the bot runs; a bot that exits instead fails the test at once, with its stderr."""
    waiting = asyncio.ensure_future(ready)
    exited = asyncio.ensure_future(asyncio.to_thread(proc.wait))
    await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        raise AssertionError(f"the bot exited with {proc.returncode}:\n{stderr_of(data_dir)[-2000:]}")
    exited.cancel()  # the thread ends with the process at the end of the test
    return waiting.result()


def stderr_of(data_dir: Path, n: int = 0) -> str:
    return (data_dir / f"stderr-{n}.log").read_text()


async def wait_exit(proc: subprocess.Popen[str], timeout: float = 60) -> int:  # noqa: ASYNC109
    return await asyncio.to_thread(proc.wait, timeout)


def answered_chats(api: FakeBotApi) -> set[int]:
    return {c.chat_id for c in api.calls("sendMessage") if c.ok}


async def wait_all_answered(api: FakeBotApi, chats: set[int], timeout: float) -> None:  # noqa: ASYNC109
    if chats <= answered_chats(api):
        return
    await api.wait_for_call("sendMessage", lambda _c: chats <= answered_chats(api), timeout=timeout)


def to_chat(chat_id: int) -> Any:
    return lambda c: c.ok and c.chat_id == chat_id


def settings_for(api: FakeBotApi, data_dir: Path, **kw: Any) -> Settings:
    return Settings(
        token=api.token,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        data_dir=data_dir,
        status_page_url="",
        **kw,
    )


@asynccontextmanager
async def running(api: FakeBotApi, data_dir: Path, **kw: Any) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """The real Application polling the fake in the test's loop; on the way out in-flight work is cut short the
    way SIGTERM cuts it."""
    store = SqliteStore(data_dir)
    app = build_application(settings_for(api, data_dir, **kw), get_matcher(), store)
    async with started_polling(app):
        try:
            yield app
        finally:
            await runtime_of(app).processor.drain(1.0)
    await store.close()


def user(api: FakeBotApi, n: int) -> dict[str, Any]:
    return api.make.user(n, f"User{n}", username=f"user{n}")


# --- nothing lost ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM", "SIGTERM, sends flowing"])
async def test_a_crash_or_stop_with_a_backlog_of_200_loses_none(
    fake_bot_api: FakeBotApi, tmp_path: Path, how: str
) -> None:
    api = fake_bot_api
    # Answers are held at "Telegram", so the bot is mid-backlog when it dies.
    api.hold("sendMessage")
    chats = {5000 + n for n in range(200)}
    with bot_process(api, tmp_path) as first:
        idle = await started(first, api.wait_for_idle_poll(timeout=60), tmp_path)
        for chat in sorted(chats):
            api.push_update(api.make.private_message(CAPACITY, user=user(api, chat)))
        # A getUpdates found nothing new: all 200 are confirmed to Telegram for good, none answered yet.
        await api.wait_for_idle_poll(since=idle + 1, timeout=60)
        assert api.pending_updates() == []
        await api.wait_for_held(1)
        began = time.monotonic()
        if how == "kill -9":
            first.send_signal(signal.SIGKILL)
            assert await wait_exit(first) == -signal.SIGKILL
        else:
            first.send_signal(signal.SIGTERM)
            if how == "SIGTERM, sends flowing":
                # The updates in flight can finish within the grace period; the queued ones wait for the next start.
                api.release("sendMessage")
            assert await wait_exit(first) == 0
            stopped_in = time.monotonic() - began
            print(f"{how} with 200 in the backlog: exited in {stopped_in:.2f} s")
            # Docker allows 10 s: in-flight updates get 4 s, the rest wait in the inbox.
            assert stopped_in < 8.0, stopped_in
    answered_first = answered_chats(api)
    if how != "SIGTERM, sends flowing":
        assert answered_first == set()
    api.release("sendMessage")
    with bot_process(api, tmp_path):
        await wait_all_answered(api, chats, timeout=120)
    lost = chats - answered_chats(api)
    print(f"{how} with a backlog of 200: {len(lost)} lost, {len(answered_first)} answered before the stop")
    assert not lost, f"{len(lost)} of 200 never answered"
    assert f"handling {200 - len(answered_first)} updates left unfinished" in stderr_of(tmp_path, 1)
    if how.startswith("SIGTERM"):
        # A clean stop answers nobody twice: what finished was marked done, what did not was left whole.
        sends = [c.chat_id for c in api.calls("sendMessage") if c.ok]
        assert len(sends) == len(set(sends)) == 200


async def test_webhook_updates_answered_200_survive_kill_9(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    port = find_free_port()
    env = {"WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "WEBHOOK_SECRET": "s3cret", "PORT": str(port)}
    api.hold("sendMessage")
    chats = {6000 + n for n in range(20)}
    with bot_process(api, tmp_path, "--webhook", **env) as first:
        await started(first, api.wait_for_call("setWebhook", timeout=60), tmp_path)
        pushed = [api.push_update(api.make.private_message(CAPACITY, user=user(api, c))) for c in sorted(chats)]
        # Telegram heard 200 for every one of them: it will never send them again.
        for update in pushed:
            delivery = await api.wait_for_delivery(update["update_id"], timeout=30)
            assert delivery.status == 200
        first.send_signal(signal.SIGKILL)
        await wait_exit(first)
    assert answered_chats(api) == set()
    api.release("sendMessage")
    with bot_process(api, tmp_path, "--webhook", **env):
        await wait_all_answered(api, chats, timeout=60)
    assert chats <= answered_chats(api)


# --- nobody held up -----------------------------------------------------------------------------


async def test_a_user_flooding_a_private_chat_is_told_once_then_ignored(
    fake_bot_api: FakeBotApi, tmp_path: Path
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path, workers=1):
        for n in range(30):
            api.push_update(api.make.private_message(f"/fix {n % 4 + 1}", user=user(api, 1001)))
        marker = api.make.marker_user()
        api.push_update(api.make.private_message("/start", user=marker))
        await api.wait_for_call("sendMessage", to_chat(marker["id"]), timeout=10)
    texts = [c.text for c in api.calls("sendMessage") if c.chat_id == 1001]
    assert texts.count(SLOW_DOWN) == 1
    assert len(texts) == 21  # 20 answers, one "slow down", then silence


async def test_a_flooding_group_delays_a_private_answer_by_less_than_2_s(
    fake_bot_api: FakeBotApi, tmp_path: Path
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        flooder = user(api, 2001)
        group = api.make.group_chat()
        for n in range(60):
            api.push_update(api.make.group_message(f"@{api.username} {CAPACITY} ({n})", chat=group, user=flooder))
        await api.wait_for_call("sendMessage", to_chat(GROUP), timeout=10)
        began = time.monotonic()
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 3001)))
        await api.wait_for_call("sendMessage", to_chat(3001), timeout=10)
        delay = time.monotonic() - began
        print(f"private answer during a group flood: {delay:.3f} s")
        assert delay < 2.0, delay
        # The flooder heard "slow down" once; past the limit nothing else was answered.
        await api.wait_for_call("sendMessage", lambda c: c.ok and c.text == SLOW_DOWN, timeout=10)
    to_group = [c.text for c in api.calls("sendMessage") if c.chat_id == GROUP]
    assert to_group.count(SLOW_DOWN) == 1
    assert len(to_group) <= 21


async def test_a_flood_wait_in_one_chat_holds_up_no_other(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        api.fail_next("sendMessage", flood(120), predicate=lambda p: p.get("chat_id") == 4001)
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 4001)))
        await api.wait_for_call("sendMessage", lambda c: c.chat_id == 4001 and not c.ok, timeout=10)
        began = time.monotonic()
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 4002)))
        await api.wait_for_call("sendMessage", to_chat(4002), timeout=10)
        assert time.monotonic() - began < 2.0


# --- sends that survive faults ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [ApiError(500, "Internal Server Error"), ApiError(502, "Bad Gateway"), "reset"],
    ids=["500", "502", "reset"],
)
async def test_a_single_transient_failure_still_yields_the_diagnosis(
    fake_bot_api: FakeBotApi, tmp_path: Path, fault: ApiError | str
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path):
        if isinstance(fault, ApiError):
            api.fail_next("sendMessage", fault)
        else:
            api.answer_raw("sendMessage", 0, b"")
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 1001)))
        call = await api.wait_for_call("sendMessage", to_chat(1001), timeout=15)
    assert "Capacity" in call.text
    sent = [c for c in api.calls("sendMessage") if c.chat_id == 1001]
    assert [c.ok for c in sent] == [False, True]
    assert not any(APOLOGY in (c.text or "") for c in sent)


async def test_no_apology_after_the_answer_went_out(
    fake_bot_api: FakeBotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = fake_bot_api
    async with running(api, tmp_path, workers=1) as app:
        store = runtime_of(app).store

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the disk caught fire")

        monkeypatch.setattr(store, "remember_answer", broken)
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 1001)))
        await api.wait_for_call("sendMessage", to_chat(1001), timeout=10)
        mark = api.mark()
        # With everything failing, the user who got nothing does get the apology.
        api.fail_next("sendMessage", ApiError(500, "Internal Server Error"), times=4)
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 1002)))
        apology = await api.wait_for_call("sendMessage", to_chat(1002), since=mark, timeout=30)
    assert APOLOGY in apology.text
    assert not any(APOLOGY in (c.text or "") for c in api.calls("sendMessage") if c.chat_id == 1001)


async def test_a_locked_store_degrades_instead_of_stalling(
    fake_bot_api: FakeBotApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = fake_bot_api
    caplog.set_level(logging.WARNING, logger="bot.services.sqlite_store")
    async with running(api, tmp_path):
        await api.wait_for_idle_poll(timeout=10)
        # Another process holds the write lock for the whole test.
        locker = sqlite3.connect(tmp_path / "claude-doctor.sqlite3", isolation_level=None, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            began = time.monotonic()
            for n in (1001, 1002, 1003):
                api.push_update(api.make.private_message(CAPACITY, user=user(api, n)))
            await wait_all_answered(api, {1001, 1002, 1003}, timeout=10)
            took = time.monotonic() - began
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    # One busy timeout (1 s) is paid once; every later write is skipped at once for a few seconds.
    assert took < 3.0, took
    assert any("carrying on without the store" in r.message for r in caplog.records)


# --- fatal means exit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (UNAUTHORIZED, "it was revoked or is wrong"),
        (ApiError(409, "Conflict: terminated by other getUpdates request"), "another instance"),
    ],
    ids=["401", "409"],
)
async def test_a_fatal_polling_answer_exits_non_zero_with_one_line(
    fake_bot_api: FakeBotApi, tmp_path: Path, error: ApiError, words: str
) -> None:
    api = fake_bot_api
    api.fail_next("getUpdates", error)
    with bot_process(api, tmp_path) as proc:
        code = await wait_exit(proc)
    err = stderr_of(tmp_path)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("claude-doctor: ")]
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err and api.token not in err


async def test_a_stream_of_garbage_from_get_updates_exits_non_zero(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    api.answer_raw("getUpdates", 200, b"<html><body>502 Bad Gateway</body></html>", times=10)
    with bot_process(api, tmp_path) as proc:
        code = await wait_exit(proc)
    err = stderr_of(tmp_path)
    assert code == 1
    assert err.splitlines()[-1].startswith("claude-doctor: the Bot API answered getUpdates 3 times"), err
    assert "Traceback" not in err


async def test_an_unreadable_update_is_skipped_and_logged_once(
    fake_bot_api: FakeBotApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = fake_bot_api
    caplog.set_level(logging.WARNING, logger="bot.telegram.inbox")
    async with running(api, tmp_path):
        bad = api.make.private_message("hello", user=user(api, 1001))
        bad["message"]["date"] = "yesterday"
        sent = api.push_update(bad)
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 1002)))
        await api.wait_for_call("sendMessage", to_chat(1002), timeout=10)
        await api.wait_for_idle_poll(timeout=10)
    skipped = [r for r in caplog.records if "cannot be read" in r.message]
    assert len(skipped) == 1 and str(sent["update_id"]) in skipped[0].message
    assert 1001 not in answered_chats(api)


# --- webhook hardening --------------------------------------------------------------------------


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _post_raw(port: int, path: str, length: int, headers: dict[str, str]) -> tuple[int, int]:
    """POST `length` bytes in 64 KB chunks until the server hangs up; (HTTP status, bytes the server took)."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < length:
                sent += sock.send(chunk[: min(len(chunk), length - sent)])
        except OSError:
            pass  # the server closed the connection: the refusal came before the body
        try:
            reply = sock.recv(4096)
        except OSError:
            reply = b""
    status = int(reply.split()[1]) if reply.startswith(b"HTTP/") else 0
    return status, sent


async def test_webhook_refuses_hostile_posts_cheaply_and_logs_no_secret_at_debug(
    fake_bot_api: FakeBotApi, tmp_path: Path
) -> None:
    api = fake_bot_api
    port = find_free_port()
    secret = "webhook-Secret_0123456789"
    env = {
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
        "WEBHOOK_SECRET": secret,
        "PORT": str(port),
        "LOG_LEVEL": "DEBUG",
    }
    with bot_process(api, tmp_path, "--webhook", **env) as proc:
        call = await started(proc, api.wait_for_call("setWebhook", timeout=60), tmp_path)
        assert call.params["secret_token"] == secret
        # An update with the secret (the fake posts it as Telegram does) is answered.
        api.push_update(api.make.private_message(CAPACITY, user=user(api, 1001)))
        await api.wait_for_call("sendMessage", to_chat(1001), timeout=30)
        health = await asyncio.to_thread(_get, port, "/healthz")
        assert health.startswith(b"HTTP/1.1 200")
        # Docker's HEALTHCHECK command reads the heartbeat the running bot keeps in DATA_DIR.
        check = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.cli", "health"],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        before = _peak_rss_kb(proc.pid)
        size = 50 * 2**20
        hostile = await asyncio.gather(
            *(asyncio.to_thread(_post_raw, port, "/hook", size, {"Content-Type": "application/json"}) for _ in range(8))
        )
        too_big = await asyncio.to_thread(
            _post_raw, port, "/hook", 2 * 2**20, {"X-Telegram-Bot-Api-Secret-Token": secret}
        )
        grown_mb = (_peak_rss_kb(proc.pid) - before) / 1024
        print(f"8 x 50 MB posts without the secret: peak RSS +{grown_mb:.2f} MB; bytes taken {[n for _, n in hostile]}")
        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc) == 0
    assert all(status == 403 for status, _ in hostile), hostile
    assert too_big[0] == 413
    assert grown_mb < 10, f"peak RSS grew by {grown_mb:.1f} MB"
    err = stderr_of(tmp_path)
    assert "setWebhook" in err  # the DEBUG line that used to carry the secret is there, redacted
    assert secret not in err and api.token not in err
    assert "127.0.0.1" in err
    # Message text only at DEBUG.
    assert not [line for line in err.splitlines() if "capacity constraints" in line and " DEBUG " not in line]


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(4096)


# --- cooldowns survive a restart ----------------------------------------------------------------


async def test_a_restart_does_not_repeat_an_auto_answer(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    for _run in range(2):
        async with running(api, tmp_path, workers=1):
            mark = api.mark()
            api.push_update(api.make.group_message(CAPACITY, user=user(api, 1001)))
            api.push_update(api.make.private_message("/start", user=api.make.marker_user()))
            await api.wait_for_call("sendMessage", lambda c: c.chat_id == api.make.marker_user()["id"], since=mark)
    auto = [c for c in api.calls("sendMessage") if c.chat_id == GROUP and c.ok]
    assert len(auto) == 1
