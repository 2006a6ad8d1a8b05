"""Prometheus metrics move with the updates, follow Prometheus' naming conventions, and are served on METRICS_PORT
in polling mode and on the webhook server; JSON logs are one event a line with secrets redacted."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.settings import setup_logging
from tests.fakebotapi import FakeBotApi, find_free_port
from tests.test_faults import CAPACITY, bot_process, started, user


def scrape(port: int) -> dict[str, float]:
    """Every sample of the metrics page, by name and labels."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def test_metric_names_follow_prometheus_conventions() -> None:
    from bot.services.metrics import exposition

    page = exposition()[0].decode()
    ours = [f for f in text_string_to_metric_families(page) if f.name.startswith("claude_doctor_")]
    kinds = {f.type for f in ours}
    assert {"counter", "histogram", "gauge"} <= kinds
    for family in ours:
        assert family.name == family.name.lower()
        if family.type == "counter":
            assert f"# TYPE {family.name}_total counter" in page
        if family.type == "histogram":
            assert family.name.endswith("_seconds")


async def test_metrics_move_with_updates_in_polling_mode(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    port = find_free_port()
    with bot_process(api, tmp_path, METRICS_PORT=str(port)) as proc:
        await started(proc, api.wait_for_idle_poll(timeout=60), tmp_path)
        before = await asyncio.to_thread(scrape, port)
        for n in range(3):
            api.push_update(api.make.private_message(CAPACITY, user=user(api, 8000 + n)))
        for n in range(3):
            await api.wait_for_call("sendMessage", lambda c, n=n: c.ok and c.chat_id == 8000 + n, timeout=30)
        after = await asyncio.to_thread(scrape, port)
    assert (
        after["claude_doctor_updates_total{type=message}"] - before.get("claude_doctor_updates_total{type=message}", 0)
        == 3
    )
    key = "claude_doctor_diagnoses_total{answer=capacity,how=private}"
    assert after[key] - before.get(key, 0) == 3
    assert after["claude_doctor_handler_seconds_count{}"] >= 3
    assert "claude_doctor_inbox_depth{}" in after


async def test_the_inbox_depth_is_counted_by_the_bot_and_read_by_the_scrape(tmp_path: Path) -> None:
    from bot.services.metrics import INBOX_DEPTH, refresh_inbox_depth, watch_inbox
    from bot.services.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path)
    try:
        await store.inbox_add([{"update_id": 1}, {"update_id": 2}])
        watch_inbox(store.inbox_count)
        assert math.isnan(INBOX_DEPTH.collect()[0].samples[0].value)  # not counted yet
        assert await refresh_inbox_depth() == 2.0
        # The scrape reads the last count without touching the store.
        await store.inbox_done([1])
        assert INBOX_DEPTH.collect()[0].samples[0].value == 2.0
        assert await refresh_inbox_depth() == 1.0
    finally:
        await store.close()

    async def closed() -> int:
        raise RuntimeError("cannot schedule new futures after shutdown")

    watch_inbox(closed)
    assert math.isnan(await refresh_inbox_depth())


async def test_the_webhook_server_serves_metrics() -> None:
    from bot.telegram.webhook import WebhookServer

    port = find_free_port()

    async def accept(update: dict[str, object]) -> None:
        return None

    hook = WebhookServer("127.0.0.1", port, "hook", "s3cret", accept, lambda: True, limit=1000)
    hook.start()
    try:
        async with httpx.AsyncClient() as client:
            page = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        await hook.stop()
    assert page.status_code == 200 and "claude_doctor_updates_total" in page.text


def test_json_logs_are_one_event_a_line_with_secrets_redacted(capsys: object) -> None:
    token = "123456:AAAbbbCCCdddEEEfffGGGhhhIIIjjjKKKlll"
    setup_logging("INFO", token, ("hook-secret-42",), "json")
    try:
        logging.getLogger("claude_doctor.test").info("calling https://x/bot%s with hook-secret-42", token)
        err = capsys.readouterr().err  # type: ignore[attr-defined]
    finally:
        setup_logging("WARNING")
    [line] = [line for line in err.splitlines() if line.strip()]
    event = json.loads(line)
    assert event["level"] == "INFO" and event["logger"] == "claude_doctor.test"
    assert token not in line and "hook-secret-42" not in line and "<token>" in event["message"]
