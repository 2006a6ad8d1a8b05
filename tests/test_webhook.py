"""The webhook server alone, on loopback: refusals come before the body, chunked bodies are capped too, and only a
well-formed update with the right secret is accepted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bot.telegram.webhook import SECRET_HEADER, WebhookServer
from tests.fakebotapi import find_free_port

SECRET = "s3cret-token_1"


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    accepted: list[dict[str, Any]] = []

    async def accept(update: dict[str, Any]) -> None:
        accepted.append(update)

    port = find_free_port()
    hook = WebhookServer("127.0.0.1", port, "hook", SECRET, accept, lambda: True, limit=1000)
    hook.start()
    try:
        yield port, accepted
    finally:
        await hook.stop()


def exchange(port: int, request: bytes, body_chunks: Sequence[bytes] = ()) -> int:
    """Send a request (then body chunks, until the server hangs up) and return the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass
        reply = sock.recv(4096)
    return int(reply.split()[1])


def post(path: str, headers: dict[str, str], body: bytes | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def test_a_good_update_with_the_secret_is_accepted(server: tuple[int, list[dict[str, Any]]]) -> None:
    port, accepted = server
    body = json.dumps({"update_id": 7, "message": {"text": "hi"}}).encode()
    assert await asyncio.to_thread(exchange, port, post("/hook", {SECRET_HEADER: SECRET}, body)) == 200
    assert accepted == [{"update_id": 7, "message": {"text": "hi"}}]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: "wrong"}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: SECRET}, b"x" * 1001, 413),
        ({SECRET_HEADER: SECRET}, b"not json", 400),
        ({SECRET_HEADER: SECRET}, b'{"no_update_id": 1}', 400),
    ],
    ids=["no secret", "wrong secret", "too big", "not json", "not an update"],
)
async def test_bad_posts_are_refused(
    server: tuple[int, list[dict[str, Any]]], headers: dict[str, str], body: bytes, status: int
) -> None:
    port, accepted = server
    assert await asyncio.to_thread(exchange, port, post("/hook", headers, body)) == status
    assert accepted == []


async def test_a_chunked_body_over_the_limit_is_refused_while_streaming(
    server: tuple[int, list[dict[str, Any]]],
) -> None:
    port, accepted = server
    head = post("/hook", {SECRET_HEADER: SECRET, "Transfer-Encoding": "chunked"})
    chunks = [b"200\r\n" + b"x" * 512 + b"\r\n"] * 100
    assert await asyncio.to_thread(exchange, port, head, chunks) == 413
    assert accepted == []


async def test_healthz_answers(server: tuple[int, list[dict[str, Any]]]) -> None:
    port, _ = server
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert await asyncio.to_thread(exchange, port, request) == 200


async def test_healthz_may_ask_a_coroutine(free_port: int) -> None:
    async def accept(update: dict[str, Any]) -> None:
        return None

    async def unhealthy() -> bool:
        return False

    hook = WebhookServer("127.0.0.1", free_port, "hook", SECRET, accept, unhealthy, limit=1000)
    hook.start()
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        assert await asyncio.to_thread(exchange, free_port, request) == 503
    finally:
        await hook.stop()


class _Store:
    def __init__(self, up: bool) -> None:
        self.up = up

    async def healthy(self) -> bool:
        return self.up


@pytest.mark.parametrize(("store_up", "expected"), [(True, True), (False, False)])
async def test_healthz_in_webhook_mode_says_whether_the_store_answers(store_up: bool, expected: bool) -> None:
    from bot.telegram.inbox import InboxRequest
    from bot.telegram.processor import ChatOrderedProcessor
    from bot.telegram.runner import Runtime

    runtime = Runtime(ChatOrderedProcessor(workers=1), InboxRequest(None), _Store(store_up), webhook_mode=True)  # type: ignore[arg-type]
    assert await runtime.healthy_now() is expected
