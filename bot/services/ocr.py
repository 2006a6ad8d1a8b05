"""Read the text out of error screenshots: validation, downscaling and a bounded, killable OCR worker pool.

Pure logic, no Telegram. The engine (RapidOCR 3 on ONNX Runtime with the PP-OCRv6 Chinese+English models
shipped in its wheel; benchmarks/OCR.md has the measurements behind the choice) is the optional extra
``claude-doctor[ocr]``: nothing is imported until an image is read, and ``ocr_available()`` says whether
it can be.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib.util
import io
import logging
import math
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

REASONS = ("too_large", "too_many_pixels", "not_an_image", "corrupt", "timeout", "busy")

# Scaling before OCR, measured in benchmarks/OCR.md. Screenshots are shrunk towards MAX_SIDE on their long
# side (a 1080x2340 phone screenshot reads as well at 1600 and ~20% faster), but never below MIN_SCALE:
# 100%-scaled desktop text is ~14 px, and under ~8 px the recogniser loses it (a 4K screenshot reads 1.00
# at 0.625x and 0.86 at 0.42x). MAX_OCR_PIXELS bounds the cost of anything larger still (8K screens).
MAX_SIDE = 1600
MIN_SCALE = 0.6
MAX_OCR_PIXELS = 6_000_000
# Detector thresholds below RapidOCR's defaults (0.3 / 0.5): with those, small 100%-scaled text on a big
# canvas goes undetected (terminal on a 4K screen: 0.28 -> 0.93; see benchmarks/OCR.md), at no cost elsewhere.
DET_THRESH = 0.2
DET_BOX_THRESH = 0.4
# Very tall images (scrolling captures) are cut into tiles with the aspect of a phone screen instead of
# being shrunk until their text is unreadable.
_TILE_ASPECT = 2.2
_TILE_OVERLAP = 0.06
# Time bound for absurd-but-legal shapes (a 1080x37000 capture): only the last tiles are read, because the
# newest message, the one that failed, is at the bottom of a chat.
MAX_TILES = 6
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000

_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
# What Pillow may call each accepted format: phone cameras write multi-picture JPEGs, which it opens as MPO.
_DECODER_NAMES = {"PNG": {"PNG"}, "JPEG": {"JPEG", "MPO"}, "WEBP": {"WEBP"}}
_ENGINE_MODULES = ("rapidocr", "onnxruntime", "PIL")

Engine = Callable[["Image"], list[str]]
EngineFactory = Callable[[int], Engine]
Box = tuple[float, float, float, float, str]


class OcrUnavailable(Exception):
    """OCR cannot be used here: the extra is not installed, the service is closed, or the engine failed."""


class ImageRejected(Exception):
    """The image was not read; ``reason`` is a short code the bot turns into a message (see REASONS)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        # Both go to args so the exception survives pickling back from a worker process.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def ocr_available() -> bool:
    """Whether the OCR extra (engine and Pillow) is installed; cheap, imports nothing."""
    return all(importlib.util.find_spec(name) is not None for name in _ENGINE_MODULES)


# --------------------------------------------------------------------------- reading order


def order_lines(boxes: Sequence[Box]) -> list[str]:
    """Put detected text boxes (x0, y0, x1, y1, text) into reading order, one line of text each.

    Boxes on one visual line that nearly touch are joined with a space; the page is then cut recursively
    along whitespace (columns first, then rows), so a sidebar never interleaves with the chat next to it.
    """
    items = [b for b in boxes if b[4].strip()]
    if not items:
        return []
    unit = statistics.median(b[3] - b[1] for b in items) or 1.0
    segments: list[list[Any]] = []
    for x0, y0, x1, y1, text in sorted(items, key=lambda b: (b[0], b[1])):
        for seg in segments:
            overlap = min(y1, seg[3]) - max(y0, seg[1])
            if overlap > 0.5 * min(y1 - y0, seg[3] - seg[1]) and -0.5 * unit <= x0 - seg[2] <= 1.5 * unit:
                seg[2], seg[1], seg[3] = max(seg[2], x1), min(seg[1], y0), max(seg[3], y1)
                seg[4] = f"{seg[4]} {text.strip()}"
                break
        else:
            segments.append([x0, y0, x1, y1, text.strip()])
    return [seg[4] for seg in _xy_cut(segments, unit)]


def _split(segs: list[list[Any]], axis: int, min_gap: float) -> list[list[list[Any]]]:
    """Groups separated by a whitespace band wider than min_gap along the axis (0: x, 1: y)."""
    ordered = sorted(segs, key=lambda s: s[axis])
    groups = [[ordered[0]]]
    end = ordered[0][axis + 2]
    for seg in ordered[1:]:
        if seg[axis] - end > min_gap:
            groups.append([seg])
        else:
            groups[-1].append(seg)
        end = max(end, seg[axis + 2])
    return groups


def _xy_cut(segs: list[list[Any]], unit: float) -> list[list[Any]]:
    if len(segs) <= 1:
        return segs
    # Wide vertical gutters are columns (sidebar | chat); thin ones are just word gaps within a row.
    for axis, gap in ((0, 1.5 * unit), (1, 0.0), (0, 0.0)):
        groups = _split(segs, axis, gap)
        if len(groups) > 1:
            return [seg for group in groups for seg in _xy_cut(group, unit)]
    return sorted(segs, key=lambda s: (s[1], s[0]))


# --------------------------------------------------------------------------- engine


def _model_files() -> tuple[Path, Path]:
    """The PP-OCRv6 small detector and recogniser that the rapidocr wheel ships (nothing is downloaded)."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise OcrUnavailable("OCR engine not installed: pip install 'claude-doctor[ocr]'")
    models = Path(spec.origin).parent / "models"
    files = (models / "PP-OCRv6_det_small.onnx", models / "PP-OCRv6_rec_small.onnx")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        # Another rapidocr version or fork: refuse rather than let it fetch models from the internet.
        raise OcrUnavailable(f"rapidocr without its bundled models ({', '.join(missing)}); need rapidocr>=3.10,<4")
    return files


def default_engine(threads: int) -> Engine:
    """Load RapidOCR (PP-OCRv6 small, Chinese+English) tuned for screenshots; returns image -> lines."""
    det, rec = _model_files()
    try:
        from PIL import Image, ImageDraw, ImageFont
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(f"OCR engine not installed ({exc.name}): pip install 'claude-doctor[ocr]'") from exc
    ocr = RapidOCR(
        params={
            "Global.log_level": "error",  # its warnings ("detection result is empty") are not problems here
            # Screenshots are never upside down, and the 0/180 line classifier turns long lines (JSON
            # errors) upside down into garbage; skipping it is also faster.
            "Global.use_cls": False,
            # The detector's default ("min", 736) upscales a small crop ~5x: slow, and it loses the first
            # line of a banner. "max" with a high limit never rescales: decode() has already sized the image.
            "Det.limit_type": "max",
            "Det.limit_side_len": 4096,
            "Det.thresh": DET_THRESH,
            "Det.box_thresh": DET_BOX_THRESH,
            "Global.max_side_len": 4096,
            "Det.model_path": str(det),
            "Rec.model_path": str(rec),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )

    def run(img: Image.Image) -> list[str]:
        out = ocr(img)
        if not out.txts:
            return []
        boxes = []
        for points, text in zip(out.boxes, out.txts, strict=True):
            xs = [float(p[0]) for p in points]
            ys = [float(p[1]) for p in points]
            boxes.append((min(xs), min(ys), max(xs), max(ys), text))
        return order_lines(boxes)

    # RapidOCR loads its models on first use; read a word now so the engine is complete when returned.
    probe = Image.new("RGB", (220, 60), (255, 255, 255))
    ImageDraw.Draw(probe).text((10, 12), "Error 529", fill=(0, 0, 0), font=ImageFont.load_default(size=28))
    run(probe)
    return run


@dataclass
class _EngineHolder:
    """Loads the engine on first use and keeps it: one per worker process (or thread lane)."""

    factory: EngineFactory
    threads: int
    engine: Engine | None = None

    def get(self) -> tuple[Engine, bool]:
        if self.engine is not None:
            return self.engine, False
        self.engine = self.factory(self.threads)
        return self.engine, True


_WORKER_HOLDER: _EngineHolder | None = None  # set by _init_worker inside a worker process
_CLI_HOLDER: _EngineHolder | None = None  # read_file's in-process engine


def _init_worker(factory: EngineFactory, threads: int, parent: int) -> None:
    global _WORKER_HOLDER
    _WORKER_HOLDER = _EngineHolder(factory, threads)
    # A pool worker outlives a SIGKILLed bot (its task pipe never reaches EOF) and would keep its ~0.5 GB.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="ocr-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


# --------------------------------------------------------------------------- validation and decoding


def _sniff(data: bytes) -> str | None:
    for magic, fmt in _MAGIC.items():
        if data.startswith(magic):
            return fmt
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    """Cheap checks that need no decoding: size, magic bytes, header dimensions. Returns (format, w, h)."""
    if not data:
        raise ImageRejected("not_an_image", "empty file")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes > {max_bytes}")
    fmt = _sniff(data)
    if fmt is None:
        raise ImageRejected("not_an_image", "not PNG, JPEG or WebP")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise OcrUnavailable("Pillow not installed: pip install 'claude-doctor[ocr]'") from exc
    try:
        # Image.open parses only the header; pixels are decoded later, in the worker.
        with Image.open(io.BytesIO(data)) as img:
            width, height, real = img.width, img.height, img.format
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    if real not in _DECODER_NAMES[fmt]:
        raise ImageRejected("corrupt", f"magic says {fmt}, decoder says {real}")
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", "zero size")
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
    return fmt, width, height


def _scale_for(width: int, height: int, max_side: int) -> float:
    """Downscale factor for OCR: long side towards max_side (per phone-shaped tile for tall captures)."""
    long_side = min(height, _TILE_ASPECT * width) if height > width else width
    factor = max(MIN_SCALE, max_side / long_side)
    # The pixel cap counts one tile for tall captures, which are read tile by tile.
    area = width * min(height, _TILE_ASPECT * width) if height > width else width * height
    return min(1.0, factor, math.sqrt(MAX_OCR_PIXELS / area))


def decode(data: bytes, max_side: int = MAX_SIDE) -> Image:
    """Verify and decode to RGB, upright, scaled so a phone-shaped tile has long side <= max_side."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # PNG: walks every chunk and checks its CRC, which catches truncation cheaply
        img = Image.open(io.BytesIO(data))
        factor = _scale_for(img.width, img.height, max_side)
        if img.format == "JPEG" and factor < 0.5:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale for free: less time and memory than resizing after.
            img.draft("RGB", (math.ceil(img.width * factor), math.ceil(img.height * factor)))
        img.load()
        img = ImageOps.exif_transpose(img) or img
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    try:
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            # Flatten transparency onto white, as the screenshot looked on screen.
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode != "RGB":
            img = img.convert("RGB")
    except ValueError as exc:  # exotic modes Pillow cannot convert (16-bit grey PNG and the like)
        raise ImageRejected("not_an_image", f"unsupported pixel mode {img.mode}") from exc
    factor = _scale_for(img.width, img.height, max_side)
    if factor < 1.0:
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def tiles(img: Image, max_tiles: int = MAX_TILES) -> list[Image]:
    """Cut a tall scrolling capture into overlapping phone-shaped pieces, keeping the last max_tiles.

    Only tall images are cut: a horizontal cut would split every line of text in two.
    """
    width, height = img.size
    size = round(_TILE_ASPECT * width)
    if height <= size * 1.15:
        return [img]
    step = round(size * (1 - _TILE_OVERLAP))
    starts = [*range(0, height - size, step), height - size]
    return [img.crop((0, start, width, start + size)) for start in starts[-max_tiles:]]


def _read(data: bytes, max_side: int, holder: _EngineHolder) -> tuple[str, bool]:
    """Worker body: decode, OCR every tile, join lines. Returns (text, whether the engine was loaded now)."""
    img = decode(data, max_side)
    try:
        engine, loaded = holder.get()
    except OcrUnavailable:
        raise
    except Exception as exc:  # a broken install must read as "unavailable", not crash the bot
        raise OcrUnavailable(f"OCR engine failed to load: {type(exc).__name__}: {exc}") from exc
    lines: list[str] = []
    for piece in tiles(img):
        lines.extend(engine(piece))
    return "\n".join(lines), loaded


def _read_in_worker(data: bytes, max_side: int) -> tuple[str, bool]:
    assert _WORKER_HOLDER is not None, "worker process not initialised"
    return _read(data, max_side, _WORKER_HOLDER)


def read_file(path: str | os.PathLike[str], *, max_side: int = MAX_SIDE) -> str:
    """Synchronous one-shot OCR of an image file for the CLI (same checks, in this process, no time limit)."""
    global _CLI_HOLDER
    if not ocr_available():
        raise OcrUnavailable("OCR is not installed: pip install 'claude-doctor[ocr]'")
    size = Path(path).stat().st_size
    if size > MAX_BYTES:
        raise ImageRejected("too_large", f"{size} bytes > {MAX_BYTES}")
    with Path(path).open("rb") as fh:
        # Bounded even so: a file can grow after the check, and pipes report no size.
        data = fh.read(MAX_BYTES + 1)
    check_image(data, MAX_BYTES, MAX_PIXELS)
    if _CLI_HOLDER is None:
        _CLI_HOLDER = _EngineHolder(default_engine, os.cpu_count() or 1)
    return _read(data, max_side, _CLI_HOLDER)[0]


# --------------------------------------------------------------------------- service


@dataclass(eq=False)
class _Lane:
    """One worker slot with its own single-worker executor, so a runaway job is killed without the others."""

    executor: concurrent.futures.Executor | None = None
    holder: _EngineHolder | None = None  # thread lanes keep their engine here
    broken: bool = False


class OcrService:
    """Bounded asynchronous OCR: validates images, runs max_workers at a time, queues at most max_queue.

    The event loop only does header checks; decoding and OCR run in worker processes (``executor="process"``,
    the default, so a job that overruns ``timeout`` is killed) or threads (for injected test engines).
    """

    def __init__(
        self,
        max_workers: int = 1,
        max_queue: int = 4,
        timeout: float = 20.0,
        max_bytes: int = MAX_BYTES,
        max_pixels: int = MAX_PIXELS,
        *,
        max_side: int = MAX_SIDE,
        executor: Literal["process", "thread"] = "process",
        engine_factory: EngineFactory | None = None,
        threads_per_worker: int | None = None,
    ) -> None:
        if max_workers < 1 or max_queue < 0 or timeout <= 0:
            raise ValueError("need max_workers >= 1, max_queue >= 0, timeout > 0")
        self.max_workers = max_workers
        self.max_queue = max_queue
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_side = max_side
        self._kind = executor
        self._factory = engine_factory or default_engine
        self._check_installed = engine_factory is None
        # ONNX Runtime starts one thread per core in every worker; share the cores out between workers.
        self._threads = threads_per_worker or max(1, (os.cpu_count() or 1) // max_workers)
        self._lanes: list[_Lane] = []
        # Plain deques instead of asyncio.Queue: nothing here is bound to one event loop.
        self._idle: collections.deque[_Lane] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Lane]] = collections.deque()
        self._in_flight = 0
        self._closed = False
        self.engine_loads = 0
        self.reads = 0

    # -- public

    @property
    def in_flight(self) -> int:
        """Images accepted and not finished yet (running or queued)."""
        return self._in_flight

    async def read(self, data: bytes) -> str:
        """OCR one image and return its text, lines in reading order separated by newlines.

        Raises ImageRejected (with .reason) for bad, oversized or slow images and a full queue, and
        OcrUnavailable when OCR cannot run at all.
        """
        if self._closed:
            raise OcrUnavailable("OCR service is closed")
        if self._check_installed and not ocr_available():
            raise OcrUnavailable("OCR is not installed: pip install 'claude-doctor[ocr]'")
        check_image(data, self.max_bytes, self.max_pixels)
        text, loaded = await self._submit(data)
        self.reads += 1
        self.engine_loads += loaded
        return text

    async def warm_up(self) -> None:
        """Start a worker and load its engine now rather than on the first user's image."""
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (64, 32), (255, 255, 255)).save(buf, format="PNG")
        await self.read(buf.getvalue())

    def close(self) -> None:
        """Stop the workers, killing any running job; later reads raise OcrUnavailable."""
        self._closed = True
        for lane in self._lanes:
            self._discard(lane)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_exception(OcrUnavailable("OCR service is closed"))

    # -- internals

    async def _submit(self, data: bytes) -> tuple[str, bool]:
        # Refuse rather than pile up: a burst of screenshots must not grow memory or latency without bound.
        if self._in_flight >= self.max_workers + self.max_queue:
            raise ImageRejected("busy", f"{self._in_flight} images in progress")
        self._in_flight += 1
        try:
            # A queued image waits at most as long as the jobs ahead of it may run.
            wait = self.timeout * max(1, math.ceil(self.max_queue / self.max_workers))
            try:
                lane = await asyncio.wait_for(self._acquire(), wait)
            except TimeoutError:
                raise ImageRejected("busy", "no worker became free") from None
            return await self._run(lane, data)
        finally:
            self._in_flight -= 1

    async def _acquire(self) -> _Lane:
        if self._idle:
            return self._idle.popleft()
        if len(self._lanes) < self.max_workers:
            self._lanes.append(_Lane())
            return self._lanes[-1]
        waiter: asyncio.Future[_Lane] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed a lane just as the wait timed out: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _release(self, lane: _Lane) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(lane)
                return
        self._idle.append(lane)

    def _start(self, lane: _Lane) -> concurrent.futures.Executor:
        if lane.executor is not None and not lane.broken:
            return lane.executor
        self._discard(lane)
        lane.broken = False
        if self._kind == "process":
            lane.executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                # spawn, not fork: the bot process has threads (HTTP pools, executors) that fork would copy badly.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._factory, self._threads, os.getpid()),
            )
        else:
            lane.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocr")
            lane.holder = _EngineHolder(self._factory, self._threads)
        return lane.executor

    async def _run(self, lane: _Lane, data: bytes) -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        try:
            executor = self._start(lane)
            if self._kind == "process":
                future = executor.submit(_read_in_worker, data, self.max_side)
            else:
                assert lane.holder is not None
                future = executor.submit(_read, data, self.max_side, lane.holder)
        except BaseException:
            self._release(lane)
            raise

        def job_done(_: concurrent.futures.Future[Any]) -> None:
            # The lane is free only once its job has really stopped: a timed-out thread keeps its slot.
            try:
                loop.call_soon_threadsafe(self._release, lane)
            except RuntimeError:  # that event loop is closed: nothing of it can be waiting any more
                self._release(lane)

        future.add_done_callback(job_done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            if self._kind == "process":
                # Kill the runaway worker; the lane gets a fresh process (and reloads the engine) next time.
                lane.broken = True
                self._discard(lane)
            raise ImageRejected("timeout", f"OCR took longer than {self.timeout:g} s") from None
        except concurrent.futures.BrokenExecutor as exc:
            lane.broken = True
            if self._closed:
                raise OcrUnavailable("OCR service is closed") from exc
            raise OcrUnavailable("OCR worker died (out of memory?)") from exc
        except (ImageRejected, OcrUnavailable):
            raise
        except Exception as exc:
            log.exception("OCR failed")
            raise OcrUnavailable(f"OCR failed: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _discard(lane: _Lane) -> None:
        executor, lane.executor = lane.executor, None
        if executor is None:
            return
        if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
            # Python < 3.14 has no public way to kill a pool's worker; terminate its processes directly.
            kill = getattr(executor, "terminate_workers", None)
            if kill is not None:
                kill()
            else:
                for proc in list((getattr(executor, "_processes", None) or {}).values()):
                    proc.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
