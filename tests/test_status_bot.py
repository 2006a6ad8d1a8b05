"""The live features end to end: the real bot against the fake Bot API and a fake status page, both on loopback.

Polls are driven by calling poll_once / poll_job directly, never by waiting for the job queue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import Application, CallbackContext

from bot.conversation import Conversation
from bot.core.matcher import get_matcher
from bot.notifier import StatusNotifier
from bot.services.sqlite_store import SqliteStore
from bot.services.status import StatusClient
from bot.settings import Settings
from bot.telegram.app import _post_init, build_application
from bot.telegram.jobs import POLL_JOB, poll_job
from tests.fake_statuspage import MINOR_NEXT_UPDATE_BODY, FakeStatuspage
from tests.fakebotapi import BLOCKED_BY_USER, Call, FakeBotApi

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
SERVICE = (
    "Claude.ai is currently experiencing a temporary service disruption. We're working on it, please check back soon."
)
ALICE = 1001
BOB = 1002
GROUP = -1001234567890
# Tuesday 2026-03-10 15:00 UTC: 08:00 in Los Angeles, inside the peak window (ends 18:00 UTC).
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
OPENED = "Claude incident: Elevated errors on Claude Opus"

App = Application  # type: ignore[type-arg]


@asynccontextmanager
async def running(server: FakeBotApi, data_dir: Path, page_url: str) -> AsyncIterator[App]:
    """The real application polling the fake Bot API, reading the page uncached (ttl 0) at a fixed time."""
    store = SqliteStore(data_dir)
    settings = Settings(
        token=server.token,
        base_url=server.base_url,
        base_file_url=server.base_file_url,
        data_dir=data_dir,
        # One update at a time: the "no answer" proofs (a marker answered after the update under test) need it.
        workers=1,
        status_page_url=page_url,
    )
    status = StatusClient(page_url, timeout=2, ttl=0) if page_url else None
    app = build_application(settings, get_matcher(), store, status=status)
    doctor(app).now = lambda: NOW
    await app.initialize()
    try:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling()
        yield app
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await store.close()


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, tmp_path: Path, page: FakeStatuspage) -> AsyncIterator[App]:
    async with running(fake_bot_api, tmp_path, page.base_url) as app:
        yield app


def doctor(app: App) -> Conversation:
    return app.bot_data["conversation"]


def notifier(app: App) -> StatusNotifier:
    return app.bot_data["notifier"]


async def poll_once(app: App) -> bool:
    return await notifier(app).poll_once()


async def subscribed(app: App, chat_id: int) -> bool:
    return chat_id in {s.chat_id for s in await doctor(app).store.subscriptions()}


def to_chat(chat_id: int) -> Any:
    return lambda c: c.chat_id == chat_id


async def say(server: FakeBotApi, text: str, *, user: int = ALICE, lang: str = "en") -> Call:
    """A private message from `user`, and the bot's answer to it."""
    mark = server.mark()
    sender = server.make.user(user, f"User{user}", language_code=lang)
    server.push_update(server.make.private_message(text, user=sender))
    return await server.wait_for_call("sendMessage", to_chat(user), since=mark)


async def in_group(server: FakeBotApi, text: str, *, user: int = ALICE) -> Call:
    mark = server.mark()
    server.push_update(server.make.group_message(text, user=server.make.user(user, f"User{user}")))
    return await server.wait_for_call("sendMessage", to_chat(GROUP), since=mark)


async def poll(app: App, server: FakeBotApi) -> list[str]:
    """One poll; the texts it sent."""
    mark = server.mark()
    assert await poll_once(app)
    return server.sent_texts(since=mark)


def poll_jobs(app: App) -> list[Any]:
    assert app.job_queue is not None
    return [job for job in app.job_queue.get_jobs_by_name(POLL_JOB) if not job.removed]


# --- /status and /tz ------------------------------------------------------------------------------------


async def test_status_shows_state_components_incident_and_link_in_html(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    page.state = "major"
    call = await say(fake_bot_api, "/status")
    assert call.text.startswith("<b>Claude status: Partial system outage</b>")
    assert "• claude.ai: major outage" in call.text
    assert "identified, impact major; since 09:12, last update 09:41" in call.text  # UTC by default
    assert '<a href="https://status.claude.com/incidents/3hd8w5n0zt6b">Details</a>' in call.text
    assert call.params["parse_mode"] == "HTML"


@pytest.mark.parametrize(
    ("question", "heading"),
    [("is claude down right now?", "<b>Claude status: "), ("claude 是不是挂了", "<b>Claude 状态：")],
)
async def test_a_question_whether_claude_is_down_gets_the_live_status_in_its_language(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage, question: str, heading: str
) -> None:
    page.state = "major"
    call = await say(fake_bot_api, question)  # from an English-speaking user
    assert call.text.startswith(heading)


async def test_status_for_a_chinese_user_is_in_shanghai_time(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    page.state = "major"
    call = await say(fake_bot_api, "/status", lang="zh-hans")
    assert "开始于 17:12" in call.text and "时间为 Asia/Shanghai 时间" in call.text


async def test_status_when_the_page_fails_says_why(bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage) -> None:
    page.state = "http500"
    call = await say(fake_bot_api, "/status")
    assert "couldn't read the status page just now (status page answered HTTP 500)" in call.text


async def test_tz_sets_the_zone_later_answers_use(bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage) -> None:
    assert "now Europe/Berlin (it's 16:00 there)" in (await say(fake_bot_api, "/tz europe/berlin")).text
    page.state = "major"
    text = (await say(fake_bot_api, "/status")).text
    assert "since 10:12" in text and "Times in Europe/Berlin" in text


async def test_bad_tz_name_gets_a_clear_answer_and_changes_nothing(bot: App, fake_bot_api: FakeBotApi) -> None:
    call = await say(fake_bot_api, "/tz Mars/Olympus_Mons")
    assert "I don't know the time zone “Mars/Olympus_Mons”" in call.text and "Asia/Shanghai" in call.text
    assert "Your time zone: UTC" in (await say(fake_bot_api, "/tz")).text


async def test_status_and_subscribe_say_when_the_feature_is_off(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    async with running(fake_bot_api, tmp_path, "") as app:
        assert "turned off" in (await say(fake_bot_api, "/status")).text
        assert "turned off" in (await say(fake_bot_api, "/subscribe")).text
        assert not await subscribed(app, ALICE)


# --- live lines under diagnoses -------------------------------------------------------------------------


async def test_service_diagnosis_names_the_open_incident(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    page.state = "major"
    text = (await say(fake_bot_api, SERVICE)).text
    assert "2. Service disruption" in text
    assert "Status page: “claude.ai and Claude Code unavailable for many users” is open (since 09:12, UTC)." in text


async def test_capacity_diagnosis_without_incident_points_at_the_network_and_says_peak(
    bot: App, fake_bot_api: FakeBotApi
) -> None:
    text = (await say(fake_bot_api, CAPACITY)).text
    assert "Status page: no incident reported: the problem is more likely on your side (network)." in text
    assert "It's peak hours now (until 18:00, UTC)" in text


async def test_a_stalled_page_does_not_hold_up_the_diagnosis(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    page.state = "stall"
    doctor(bot).live_wait = 0.2  # the real bound is 2 s; the behaviour is the same, the test quicker
    text = (await say(fake_bot_api, CAPACITY)).text
    assert "3. Capacity" in text and "peak hours now" in text
    assert "Status page" not in text


# --- subscriptions --------------------------------------------------------------------------------------


async def test_subscriber_gets_one_message_when_an_incident_opens(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    assert "Subscribed" in (await say(fake_bot_api, "/subscribe")).text
    page.state = "minor"
    [text] = await poll(bot, fake_bot_api)
    assert OPENED in text and "We are continuing to investigate this issue." in text
    mark = fake_bot_api.mark()
    assert await poll_once(bot)
    await fake_bot_api.assert_no_call("sendMessage", to_chat(ALICE), since=mark)


async def test_subscriber_gets_the_update_then_the_resolution(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    await say(fake_bot_api, "/subscribe")
    page.state = "minor"
    await poll(bot, fake_bot_api)
    page.state = "minor_update"
    [update] = await poll(bot, fake_bot_api)
    assert "Incident update: Elevated errors on Claude Opus" in update and MINOR_NEXT_UPDATE_BODY in update
    page.state = "ok"
    [resolved] = await poll(bot, fake_bot_api)
    assert "Resolved: Elevated errors on Claude Opus" in resolved


async def test_restart_repeats_nothing_and_still_announces_the_resolution(
    fake_bot_api: FakeBotApi, tmp_path: Path, page: FakeStatuspage
) -> None:
    async with running(fake_bot_api, tmp_path, page.base_url) as app:
        await say(fake_bot_api, "/subscribe")
        page.state = "minor"
        assert len(await poll(app, fake_bot_api)) == 1
    async with running(fake_bot_api, tmp_path, page.base_url) as again:
        await _post_init(again)
        assert len(poll_jobs(again)) == 1  # polling resumes for the saved subscription
        mark = fake_bot_api.mark()
        assert await poll_once(again)
        await fake_bot_api.assert_no_call("sendMessage", to_chat(ALICE), since=mark)
        page.state = "ok"
        [resolved] = await poll(again, fake_bot_api)
        assert "Resolved: Elevated errors on Claude Opus" in resolved


async def test_what_is_open_at_subscribe_time_is_shown_then_not_announced(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    page.state = "minor"
    reply = await say(fake_bot_api, "/subscribe")
    assert "Status page: “Elevated errors on Claude Opus” is open" in reply.text
    mark = fake_bot_api.mark()
    assert await poll_once(bot)
    await fake_bot_api.assert_no_call("sendMessage", to_chat(ALICE), since=mark)


async def test_subscribing_twice_says_so(bot: App, fake_bot_api: FakeBotApi) -> None:
    await say(fake_bot_api, "/subscribe")
    assert "already subscribed" in (await say(fake_bot_api, "/subscribe")).text
    assert await doctor(bot).store.subscription_count() == 1


async def test_poll_job_runs_only_while_someone_is_subscribed(bot: App, fake_bot_api: FakeBotApi) -> None:
    assert poll_jobs(bot) == []
    await say(fake_bot_api, "/subscribe")
    await say(fake_bot_api, "/subscribe", user=BOB)
    assert len(poll_jobs(bot)) == 1
    await say(fake_bot_api, "/unsubscribe")
    assert len(poll_jobs(bot)) == 1
    assert "Unsubscribed" in (await say(fake_bot_api, "/unsubscribe", user=BOB)).text
    assert poll_jobs(bot) == []


async def test_unsubscribed_chat_gets_no_more_messages(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    await say(fake_bot_api, "/subscribe")
    await say(fake_bot_api, "/subscribe", user=BOB)
    await say(fake_bot_api, "/unsubscribe")
    page.state = "minor"
    mark = fake_bot_api.mark()
    assert await poll_once(bot)
    assert OPENED in (await fake_bot_api.wait_for_call("sendMessage", to_chat(BOB), since=mark)).text
    await fake_bot_api.assert_no_call("sendMessage", to_chat(ALICE), since=mark)


async def test_unsubscribe_without_a_subscription_says_so(bot: App, fake_bot_api: FakeBotApi) -> None:
    assert "isn't subscribed" in (await say(fake_bot_api, "/unsubscribe")).text


async def test_chat_that_blocked_the_bot_is_unsubscribed(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    await say(fake_bot_api, "/subscribe")
    await say(fake_bot_api, "/subscribe", user=BOB)
    fake_bot_api.fail_next("sendMessage", BLOCKED_BY_USER, predicate=lambda p: p.get("chat_id") == BOB)
    page.state = "minor"
    sent = await poll(bot, fake_bot_api)
    assert len(sent) == 1  # Alice's; Bob's failed
    assert not await subscribed(bot, BOB)
    assert await subscribed(bot, ALICE)


async def test_chinese_subscriber_gets_chinese_messages(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    await say(fake_bot_api, "/subscribe", lang="zh-hans")
    page.state = "minor"
    [text] = await poll(bot, fake_bot_api)
    assert text.startswith("<b>🔴 Claude 故障：Elevated errors on Claude Opus</b>") and "Asia/Shanghai" in text


async def test_in_groups_only_admins_subscribe(bot: App, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.set_chat_member(GROUP, ALICE, "member")
    fake_bot_api.set_chat_member(GROUP, BOB, "administrator")
    assert "Only group admins" in (await in_group(fake_bot_api, "/subscribe")).text
    assert "Subscribed" in (await in_group(fake_bot_api, "/subscribe", user=BOB)).text
    assert await subscribed(bot, GROUP)


async def test_removed_from_a_group_drops_its_subscription(bot: App, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.set_chat_member(GROUP, BOB, "administrator")
    await in_group(fake_bot_api, "/subscribe", user=BOB)
    fake_bot_api.push_update(fake_bot_api.make.my_chat_member(fake_bot_api.make.group_chat(), new_status="kicked"))
    await say(fake_bot_api, "/start")  # handled after the membership change
    assert not await subscribed(bot, GROUP)
    assert poll_jobs(bot) == []


async def test_a_group_upgraded_to_a_supergroup_keeps_its_subscription_and_settings(
    bot: App, fake_bot_api: FakeBotApi
) -> None:
    old_id, new_id = -4242, -1004242
    store = doctor(bot).store
    await store.subscribe(old_id, "zh")
    await store.set_autoreply(old_id, False)
    for update in fake_bot_api.make.migration(old_id, new_id):
        fake_bot_api.push_update(update)
    await say(fake_bot_api, "/start")  # handled after both notices
    assert await subscribed(bot, new_id) and not await subscribed(bot, old_id)
    assert (await store.chat(new_id)).autoreply is False
    assert [s.lang for s in await store.subscriptions()] == ["zh"]


async def test_failing_page_backs_the_poll_off_and_recovery_resets_it(
    bot: App, fake_bot_api: FakeBotApi, page: FakeStatuspage
) -> None:
    await say(fake_bot_api, "/subscribe")
    page.state = "http500"
    clock = [1_000_000.0]
    notifier(bot).clock = lambda: clock[0]
    context = CallbackContext(bot)

    async def tick() -> int:
        """One run of the job; how many times it read the page."""
        for job in poll_jobs(bot):
            job.schedule_removal()
        before = page.requests
        await poll_job(context)
        [job] = poll_jobs(bot)
        # The next tick comes soon enough to keep the poller's lease; the page itself waits out the backoff.
        assert (job.next_t - datetime.now(UTC)).total_seconds() <= notifier(bot).lease_seconds / 2
        return page.requests - before

    assert await tick() == 1 and notifier(bot).backoff.delay == 120
    clock[0] += 119
    assert await tick() == 0  # the backoff has not passed
    clock[0] += 1
    assert await tick() == 1 and notifier(bot).backoff.delay == 240
    page.state = "ok"
    clock[0] += 240
    assert await tick() == 1 and notifier(bot).backoff.delay == 60


def test_malformed_status_page_url_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(root),
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef",
        "DATA_DIR": str(tmp_path / "data"),
        "STATUS_PAGE_URL": "status.claude.com",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "claude-doctor: STATUS_PAGE_URL must be an http(s) URL, got 'status.claude.com' "
        "(or set it empty to turn status checks off)"
    )
