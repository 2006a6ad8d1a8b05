"""Benchmark bot.services.ocr.OcrService end to end: latency per phone screenshot, worker memory, throughput when full.

    python benchmarks/ocr_bench.py [--repeats 20] [--burst 12] [--workers 1,2]

Latency is ``await service.read(png_bytes)`` as the bot calls it (header checks, IPC to the worker process,
decode, downscale, OCR, reading order). Run it on an otherwise idle machine if you can; on a shared one,
trust medians over means.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.services.ocr import MAX_SIDE, ImageRejected, OcrService, ocr_available  # noqa: E402
from tests.screenshots import ERRORS_EN, ERRORS_ZH, TELEGRAM, Shot  # noqa: E402


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _workers() -> list[int]:
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def _timed(service: OcrService, data: bytes) -> float:
    start = time.perf_counter()
    await service.read(data)
    return time.perf_counter() - start


async def latency(repeats: int, max_side: int) -> dict[str, object]:
    """Sequential reads of phone-sized screenshots with one worker; memory of that worker afterwards."""
    shots = {
        "phone PNG 1080x2340 (en)": Shot("p", ERRORS_EN[0], "phone").data(),
        "phone PNG 1080x2340 (zh)": Shot("p", ERRORS_ZH[1], "phone", seed=3).data(),
        "phone via Telegram (591x1280 JPEG)": Shot("p", ERRORS_EN[2], "phone", seed=1, **TELEGRAM).data(),
        "banner 752x150 PNG": Shot("b", ERRORS_EN[0], "banner").data(),
    }
    service = OcrService(max_workers=1, max_queue=1, timeout=120, max_side=max_side)
    parent_before = _status_mb(os.getpid(), "VmRSS")
    start = time.perf_counter()
    await service.warm_up()
    cold = time.perf_counter() - start
    (pid,) = _workers()
    idle_rss = _status_mb(pid, "VmRSS")
    result: dict[str, object] = {"cold start s (spawn + load engine)": round(cold, 2)}
    for name, data in shots.items():
        await service.read(data)  # first read of a new size settles allocations
        times = [await _timed(service, data) for _ in range(repeats)]
        result[name] = f"median {statistics.median(times):.2f} s, p95 {_p95(times):.2f} s (n={len(times)})"
    result["worker RSS, engine loaded, idle MB"] = round(idle_rss)
    result["worker RSS after reads MB"] = round(_status_mb(pid, "VmRSS"))
    result["worker peak RSS MB"] = round(_status_mb(pid, "VmHWM"))
    result["bot process RSS growth MB"] = round(_status_mb(os.getpid(), "VmRSS") - parent_before)
    service.close()
    return result


async def throughput(workers: int, burst: int, max_side: int) -> dict[str, object]:
    """A burst of phone screenshots against a full pool: images per second and queueing latency."""
    data = [Shot("p", e, "phone", seed=i).data() for i, e in enumerate((ERRORS_EN + ERRORS_ZH) * 2)][:burst]
    service = OcrService(max_workers=workers, max_queue=burst, timeout=300, max_side=max_side)
    await asyncio.gather(*(service.warm_up() for _ in range(workers)))  # one engine per worker, loaded
    start = time.perf_counter()
    latencies = await asyncio.gather(*(_timed(service, d) for d in data))
    wall = time.perf_counter() - start
    peak = sum(_status_mb(pid, "VmHWM") for pid in _workers())
    # Overload: more than max_workers + max_queue at once must be refused, not queued.
    small = OcrService(max_workers=workers, max_queue=2, timeout=300, max_side=max_side)
    outcomes = await asyncio.gather(*(small.read(d) for d in data[: workers + 2 + 3]), return_exceptions=True)
    busy = sum(isinstance(o, ImageRejected) and o.reason == "busy" for o in outcomes)
    service.close()
    small.close()
    return {
        "workers": workers,
        "threads per worker": max(1, (os.cpu_count() or 1) // workers),
        "images": burst,
        "images/s": round(burst / wall, 2),
        "s per image (wall / images)": round(wall / burst, 2),
        "latency median / p95 s (incl. queueing)": f"{statistics.median(latencies):.1f} / {_p95(latencies):.1f}",
        "workers' peak RSS MB (sum)": round(peak),
        f"burst of {workers + 5} with max_queue=2: refused busy": busy,
    }


async def main_async(args: argparse.Namespace) -> None:
    """Run the benchmarks and print the figures."""
    print(f"# OcrService benchmark (MAX_SIDE={args.max_side}, {os.cpu_count()} cores)\n")
    for key, value in (await latency(args.repeats, args.max_side)).items():
        print(f"- {key}: {value}")
    for workers in args.workers:
        print(f"\n## pool full, {workers} worker(s)\n")
        for key, value in (await throughput(workers, args.burst, args.max_side)).items():
            print(f"- {key}: {value}")


def main() -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--burst", type=int, default=12)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--max-side", type=int, default=MAX_SIDE)
    args = parser.parse_args()
    if not ocr_available():
        print("OCR extra not installed: pip install 'claude-doctor[ocr]'", file=sys.stderr)
        return 1
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
