"""OCR service: real reads of generated screenshots, rejection of bad files, and the queue and time limits.

The concurrency tests inject fake engines that block on events, so they are deterministic and fast; only
the TestRealOcr class loads the real engine (once, in one worker process).
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import select
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PIL", reason="OCR extra not installed (pip install 'claude-doctor[ocr]'): no Pillow")

from PIL import Image
from rapidfuzz import fuzz

from bot.services import ocr
from bot.services.ocr import ImageRejected, OcrService, OcrUnavailable
from tests import screenshots

# Measured in benchmarks/OCR.md: the shipped pipeline scores >= 0.99 on all 32 corpus screenshots (1.00 on
# every case below) and >= 0.93 on the 10 high-resolution ones, while the broken reads seen while tuning (a
# line lost or garbled) scored 0.00-0.86. 0.90 sits between the two, and still allows two wrong characters
# in the shortest error (27 characters once whitespace is removed).
ACCURACY = 0.90


def _png(width: int = 64, height: int = 32, colour: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions in its header: a decompression bomb that costs no memory."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def stripped(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def score(truth: str, text: str) -> float:
    """The benchmark's accuracy: best-matching region, whitespace removed, lowercased."""
    return fuzz.partial_ratio(stripped(truth), stripped(text)) / 100


# --------------------------------------------------------------------------- fake engines


class FakeEngine:
    """Counts loads and calls; while ``gate`` is set to an unset Event, every call blocks on it."""

    def __init__(self, text: str = "API Error: 529") -> None:
        self.text = text
        self.loads = 0
        self.calls = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    def factory(self, threads: int) -> Any:
        self.loads += 1
        return self.run

    def run(self, img: Image.Image) -> list[str]:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)  # bounded so a broken test cannot hang the run
        return [self.text, f"{img.width}x{img.height}"]


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    engine = FakeEngine()
    yield engine
    if engine.gate is not None:
        engine.gate.set()  # never leave a worker thread blocked behind a failed test


@pytest.fixture
def service(fake: FakeEngine) -> Iterator[OcrService]:
    svc = OcrService(max_workers=1, max_queue=1, timeout=5.0, executor="thread", engine_factory=fake.factory)
    yield svc
    svc.close()


async def _until(condition: Any, limit: float = 5.0) -> None:
    """Yield to the loop until condition() holds, failing after `limit` seconds.

    The conditions change in worker threads, so there is no asyncio.Event to await instead.
    """
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- bad files


async def test_reads_png_jpeg_webp(service: OcrService, fake: FakeEngine) -> None:
    img = Image.new("RGB", (80, 40), (250, 250, 250))
    for fmt in ("PNG", "JPEG", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        assert await service.read(buf.getvalue()) == "API Error: 529\n80x40"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "not_an_image", id="empty-file"),
        pytest.param(b"Due to unexpected capacity constraints\n", "not_an_image", id="text-file-named-jpg"),
        pytest.param(b"GIF89a" + b"\0" * 64, "not_an_image", id="gif"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\0" * 64, "corrupt", id="jpeg-magic-garbage-body"),
        pytest.param(_png_header_only(30_000, 30_000), "too_many_pixels", id="30000x30000-header"),
        pytest.param(_png_header_only(8_000, 6_000), "too_many_pixels", id="48-megapixel-header"),
    ],
)
async def test_rejects_bad_files(service: OcrService, fake: FakeEngine, data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        await service.read(data)
    assert caught.value.reason == reason
    assert fake.calls == 0


async def test_truncated_png_is_corrupt(service: OcrService, fake: FakeEngine) -> None:
    data = screenshots.render("Request timed out.", "banner") if screenshots.fonts_available() else _png(400, 300)
    with pytest.raises(ImageRejected) as caught:
        await service.read(data[: len(data) * 2 // 3])
    assert caught.value.reason == "corrupt"
    assert fake.calls == 0


async def test_size_limits(fake: FakeEngine) -> None:
    svc = OcrService(executor="thread", engine_factory=fake.factory, max_bytes=500, max_pixels=10_000)
    try:
        big = Image.effect_noise((200, 200), 60).convert("RGB")  # noise does not compress: > 500 bytes
        buf = io.BytesIO()
        big.save(buf, format="PNG")
        with pytest.raises(ImageRejected) as caught:
            await svc.read(buf.getvalue())
        assert caught.value.reason == "too_large"
        with pytest.raises(ImageRejected) as caught:
            await svc.read(_png(101, 100))  # 10,100 pixels, tiny file
        assert caught.value.reason == "too_many_pixels"
    finally:
        svc.close()


def test_rejection_survives_pickling() -> None:
    """Worker processes send ImageRejected back through pickle: the reason must survive."""
    import pickle

    err = pickle.loads(pickle.dumps(ImageRejected("corrupt", "broken PNG")))
    assert (err.reason, err.detail, str(err)) == ("corrupt", "broken PNG", "corrupt: broken PNG")


# --------------------------------------------------------------------------- scaling and layout


@pytest.mark.parametrize(
    ("size", "scaled"),
    [
        pytest.param((1080, 2340), ocr.MAX_SIDE / 2340, id="phone-to-MAX_SIDE"),
        pytest.param((3840, 2160), ocr.MIN_SCALE, id="4k-stops-at-MIN_SCALE"),
        pytest.param((7680, 4320), math.sqrt(ocr.MAX_OCR_PIXELS / (7680 * 4320)), id="8k-pixel-cap"),
        pytest.param((752, 150), 1.0, id="banner-untouched"),
    ],
)
async def test_large_images_are_scaled_down(service: OcrService, size: tuple[int, int], scaled: float) -> None:
    text = await service.read(_png(*size))
    assert text.splitlines()[1] == f"{round(size[0] * scaled)}x{round(size[1] * scaled)}"


def test_tall_capture_is_tiled_not_squashed() -> None:
    # A 1080x20000 scrolling capture: squashing it to MAX_SIDE would make its text ~9x smaller.
    img = ocr.decode(_png(1080, 20_000, (250, 250, 250)))
    assert img.width == round(1080 * ocr.MAX_SIDE / (2.2 * 1080))  # scaled like one phone screen
    pieces = ocr.tiles(img)
    # Phone-shaped tiles; only the last MAX_TILES, where the newest message (the error) is, are read.
    assert len(pieces) == ocr.MAX_TILES
    assert {p.size for p in pieces} == {(img.width, round(2.2 * img.width))}
    bottom = img.crop((0, img.height - 10, img.width, img.height))
    assert pieces[-1].crop((0, pieces[-1].height - 10, img.width, pieces[-1].height)).tobytes() == bottom.tobytes()


def test_reading_order_keeps_columns_apart() -> None:
    # A sidebar list beside a two-line error: row-by-row joining would interleave them.
    boxes = [
        (20, 100, 200, 120, "Recents"),
        (20, 140, 200, 160, "Pandas merge duplicates"),
        (20, 180, 200, 200, "SQL window functions"),
        (500, 138, 1100, 160, "Due to unexpected capacity constraints, Claude is unable to respond"),
        (500, 166, 700, 186, "again soon."),
        (500, 200, 590, 222, "Try again"),
        (600, 200, 760, 222, "Start a new chat"),
    ]
    assert ocr.order_lines(boxes) == [
        "Recents",
        "Pandas merge duplicates",
        "SQL window functions",
        "Due to unexpected capacity constraints, Claude is unable to respond",
        "again soon.",
        "Try again Start a new chat",
    ]


# --------------------------------------------------------------------------- concurrency


async def test_engine_loads_once(service: OcrService, fake: FakeEngine) -> None:
    for _ in range(3):
        await service.read(_png())
    assert (fake.loads, fake.calls, service.engine_loads, service.reads) == (1, 3, 1, 3)


async def test_busy_when_queue_full(service: OcrService, fake: FakeEngine) -> None:
    fake.gate = threading.Event()
    running = asyncio.create_task(service.read(_png()))
    await _until(fake.entered.is_set)
    queued = asyncio.create_task(service.read(_png()))
    await _until(lambda: service.in_flight == 2)  # one running + max_queue=1 waiting
    with pytest.raises(ImageRejected) as caught:
        await service.read(_png())
    assert caught.value.reason == "busy"
    fake.gate.set()
    assert await running == await queued == "API Error: 529\n64x32"
    assert fake.calls == 2


async def test_event_loop_not_blocked_while_reading(service: OcrService, fake: FakeEngine) -> None:
    fake.gate = threading.Event()
    task = asyncio.create_task(service.read(_png()))
    await _until(fake.entered.is_set)
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not task.done()
    fake.gate.set()
    await task


async def test_timeout_keeps_slot_until_thread_stops(fake: FakeEngine) -> None:
    svc = OcrService(max_workers=1, max_queue=0, timeout=0.3, executor="thread", engine_factory=fake.factory)
    fake.gate = threading.Event()
    try:
        with pytest.raises(ImageRejected) as caught:
            await svc.read(_png())
        assert caught.value.reason == "timeout"
        # A thread cannot be killed: its slot stays taken, so the next image is refused, not piled up.
        with pytest.raises(ImageRejected) as caught:
            await svc.read(_png())
        assert caught.value.reason == "busy"
        fake.gate.set()
        fake.gate = None
        await _until(lambda: bool(svc._idle))
        assert await svc.read(_png()) == "API Error: 529\n64x32"
    finally:
        svc.close()


def _blocking_factory(threads: int) -> Any:
    """Engine for a worker process: images wider than 100 px block on an Event nothing ever sets.

    A process-shared Event would be left broken by killing a process that waits on it, so the Event is
    local to the worker; the wait is bounded in case the kill under test does not happen.
    """
    never = threading.Event()

    def run(img: Image.Image) -> list[str]:
        if img.width > 100:
            never.wait(60)
        return [f"{img.width}x{img.height}"]

    return run


async def test_timeout_kills_worker_process() -> None:
    svc = OcrService(max_workers=1, max_queue=0, timeout=4.0, executor="process", engine_factory=_blocking_factory)
    try:
        assert await svc.read(_png(50, 20)) == "50x20"  # starts the worker outside the timed read
        with pytest.raises(ImageRejected) as caught:
            await svc.read(_png(400, 20))
        assert caught.value.reason == "timeout"
        # The stuck process was killed, so the slot is free again and a new worker loads a new engine.
        await _until(lambda: bool(svc._idle))
        assert await svc.read(_png(60, 20)) == "60x20"
        assert svc.engine_loads == 2
    finally:
        svc.close()


_BOT_SCRIPT = """
import asyncio, multiprocessing, sys
sys.path.insert(0, {root!r})
from bot.services.ocr import OcrService
from tests.test_ocr import _blocking_factory, _png

async def main():
    svc = OcrService(executor="process", engine_factory=_blocking_factory)
    await svc.read(_png(50, 20))
    print(multiprocessing.active_children()[0].pid, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch processes")
def test_worker_exits_when_bot_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed bot must not leave an OCR worker (and its engine's memory) behind."""
    script = tmp_path / "bot_main.py"
    script.write_text(_BOT_SCRIPT.format(root=str(Path(__file__).resolve().parent.parent)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the bot script did not start its worker"
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        assert _alive(worker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


async def test_unavailable_when_extra_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(ocr, "ocr_available", lambda: False)
    svc = OcrService()
    with pytest.raises(OcrUnavailable):
        await svc.read(_png())
    path = tmp_path / "shot.png"
    path.write_bytes(_png())
    with pytest.raises(OcrUnavailable):
        ocr.read_file(path)
    svc.close()
    with pytest.raises(OcrUnavailable):
        await svc.read(_png())


def test_a_file_over_the_limit_is_refused_without_reading_it_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(ocr, "ocr_available", lambda: True)
    path = tmp_path / "huge.png"
    with path.open("wb") as fh:
        fh.truncate(4 * ocr.MAX_BYTES)  # sparse: no disk used
    with pytest.raises(ImageRejected) as caught:
        ocr.read_file(path)
    assert caught.value.reason == "too_large"


async def test_close_answers_waiting_reads(service: OcrService, fake: FakeEngine) -> None:
    fake.gate = threading.Event()
    running = asyncio.create_task(service.read(_png()))
    await _until(fake.entered.is_set)
    queued = asyncio.create_task(service.read(_png()))
    await _until(lambda: service.in_flight == 2)
    service.close()
    with pytest.raises(OcrUnavailable):
        await queued
    fake.gate.set()
    await running  # a thread cannot be stopped: the job already running finishes


def test_ocr_available_is_a_bool() -> None:
    assert isinstance(ocr.ocr_available(), bool)


# --------------------------------------------------------------------------- the real engine

REAL_CASES = [
    ("web_light", screenshots.ERRORS_EN[0], {}),
    ("web_dark", screenshots.ERRORS_ZH[0], {"jpeg_quality": 60}),
    ("terminal", screenshots.ERRORS_EN[3], {}),
    ("phone", screenshots.ERRORS_ZH[1], {"seed": 3}),
    ("phone", screenshots.ERRORS_EN[2], {"seed": 1, "jpeg_quality": 80, "scale": 1280 / 2340}),
    ("desktop", screenshots.ERRORS_EN[1], {}),
    ("banner", screenshots.ERRORS_ZH[2], {}),
]


@pytest.fixture(scope="module")
def real_service() -> Iterator[OcrService]:
    screenshots.require_real_ocr()
    svc = OcrService(max_workers=1, max_queue=len(REAL_CASES), timeout=60.0)
    yield svc
    svc.close()


class TestRealOcr:
    @pytest.mark.parametrize(
        ("style", "error", "options"),
        REAL_CASES,
        ids=[f"{style}-{i}" for i, (style, _, _) in enumerate(REAL_CASES)],
    )
    async def test_error_text_is_recovered(
        self, real_service: OcrService, style: str, error: str, options: dict[str, Any]
    ) -> None:
        text = await real_service.read(screenshots.render(error, style, **options))
        assert score(error, text) >= ACCURACY, text
        assert "\n" in text  # lines stay separate, in reading order

    async def test_engine_loaded_once(self, real_service: OcrService) -> None:
        await real_service.read(screenshots.render(screenshots.ERRORS_EN[5], "banner"))
        assert real_service.engine_loads == 1
        assert real_service.reads >= 1

    def test_read_file(self, real_service: OcrService, tmp_path: Any) -> None:
        path = tmp_path / "shot.jpg"
        path.write_bytes(screenshots.render(screenshots.ERRORS_EN[6], "terminal", jpeg_quality=70))
        assert score(screenshots.ERRORS_EN[6], ocr.read_file(path)) >= ACCURACY
