"""Screenshots through the real bot, end to end over HTTP: getFile and the download come from the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.core.matcher import get_matcher
from bot.services.ocr import OcrService
from bot.services.sqlite_store import SqliteStore
from bot.telegram.app import build_application
from tests.fakebotapi import FakeBotApi, started_polling
from tests.test_bot_e2e import settings_for

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
GROUP = -1001234567890


@pytest.fixture(scope="module")
def ocr() -> Iterator[OcrService]:
    pytest.importorskip("PIL", reason="OCR extra not installed (pip install 'claude-doctor[ocr]'): no PIL")
    from tests import screenshots

    screenshots.require_real_ocr()
    service = OcrService(max_workers=1, max_queue=4, timeout=60.0)
    yield service
    service.close()


@pytest.fixture(scope="module")
def capacity_png(ocr: OcrService) -> bytes:
    from tests import screenshots

    return screenshots.render(CAPACITY, "banner", lang="en")


async def polling(server: FakeBotApi, data_dir: Path, ocr: OcrService | None) -> AsyncIterator[FakeBotApi]:
    app = build_application(settings_for(server, data_dir), get_matcher(), SqliteStore(data_dir), ocr=ocr)
    async with started_polling(app):
        yield server
    await app.bot_data["conversation"].store.close()


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi, tmp_path: Path, ocr: OcrService) -> AsyncIterator[FakeBotApi]:
    async for server in polling(fake_bot_api, tmp_path, ocr):
        yield server


@pytest.fixture
async def bot_without_ocr(fake_bot_api: FakeBotApi, tmp_path: Path) -> AsyncIterator[FakeBotApi]:
    async for server in polling(fake_bot_api, tmp_path, None):
        yield server


async def test_private_screenshot_is_read_and_diagnosed(bot: FakeBotApi, capacity_png: bytes) -> None:
    bot.push_update(bot.make.photo_message(file=bot.add_file(capacity_png, file_path="photos/shot.png")))
    call = await bot.wait_for_call("sendMessage", timeout=60)
    assert "Read from the image" in call.text and "3. Capacity" in call.text
    assert bot.calls("getFile")


async def test_screenshot_sent_as_a_file_is_read_too(bot: FakeBotApi, capacity_png: bytes) -> None:
    file = bot.add_file(capacity_png, file_path="documents/shot.png")
    bot.push_update(bot.make.document_message("shot.png", mime_type="image/png", file=file))
    assert "3. Capacity" in (await bot.wait_for_call("sendMessage", timeout=60)).text


async def test_fix_as_a_reply_to_a_group_screenshot(bot: FakeBotApi, capacity_png: bytes) -> None:
    bot.set_chat_member(GROUP, 1001, "member")
    photo = bot.make.photo_message(file=bot.add_file(capacity_png), chat=bot.make.group_chat())
    # The group auto-answer may come first: both must name capacity and reply to the screenshot.
    bot.push_update(photo)
    bot.push_update(bot.make.group_message("/fix", reply_to=photo["message"]))
    call = await bot.wait_for_call("sendMessage", lambda c: c.chat_id == GROUP, timeout=60)
    assert "3. Capacity" in call.text
    assert call.params["reply_parameters"]["message_id"] == photo["message"]["message_id"]


async def test_a_text_file_named_jpg_gets_a_clear_answer(bot: FakeBotApi) -> None:
    file = bot.add_file(b"this is not a picture at all", file_path="documents/fake.jpg")
    bot.push_update(bot.make.document_message("fake.jpg", mime_type="image/jpeg", file=file))
    assert "not an image that can be read" in (await bot.wait_for_call("sendMessage", timeout=30)).text


async def test_an_image_over_the_download_limit_is_refused(bot: FakeBotApi, capacity_png: bytes) -> None:
    file = bot.add_file(capacity_png, file_size=25 * 1024 * 1024)
    bot.push_update(bot.make.photo_message(file=file))
    assert "too large" in (await bot.wait_for_call("sendMessage", timeout=30)).text
    assert not bot.calls("getFile")


async def test_without_the_ocr_extra_images_get_a_paste_the_text_answer(bot_without_ocr: FakeBotApi) -> None:
    server = bot_without_ocr
    server.push_update(server.make.photo_message(file=server.add_file(b"\x89PNG\r\n\x1a\n")))
    assert "Screenshots are not enabled here" in (await server.wait_for_call("sendMessage")).text


async def test_without_the_ocr_extra_a_caption_is_still_diagnosed(bot_without_ocr: FakeBotApi) -> None:
    server = bot_without_ocr
    server.push_update(server.make.photo_message(caption=CAPACITY, file=server.add_file(b"\x89PNG\r\n\x1a\n")))
    assert "3. Capacity" in (await server.wait_for_call("sendMessage")).text
