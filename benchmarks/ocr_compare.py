"""Compare OCR engines on generated Claude error screenshots: accuracy, kept spaces, speed, memory, size.

Each engine runs in its own subprocess (optionally under its own virtualenv's interpreter, so candidates
with conflicting packages can be measured side by side and their install size read with du); the parent
renders the corpus from tests/screenshots.py and scores the text the workers send back.

    python benchmarks/ocr_compare.py                      # bot.services.ocr + every engine found under /opt/ocr-venvs
    python benchmarks/ocr_compare.py --engine rapidocr=/path/to/venv/bin/python
    python benchmarks/ocr_compare.py --corpus all --engine bot.services.ocr@1280 --engine bot.services.ocr@2400

An engine name may carry "@N": the image's long side is scaled down to N px before OCR (bot/services/ocr.py's
downscale), which is how the max-side sweep is done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("OCR_VENVS", "/opt/ocr-venvs"))
TESSDATA = "/usr/share/tesseract-ocr/5/tessdata"

# name -> (venv folder under VENVS, adapter kind); "tuned" adapters skip the 0/180 line classifier and
# never upscale small images (see OCR.md for why), "defaults" use the library as shipped.
ENGINES: dict[str, tuple[str, str]] = {
    "bot.services.ocr": ("", "bot.services.ocr"),
    "rapidocr-onnxruntime": ("rapidocr-onnxruntime", "rapidocr1"),
    "rapidocr-onnxruntime-defaults": ("rapidocr-onnxruntime", "rapidocr1-defaults"),
    "rapidocr-openvino": ("rapidocr-openvino", "rapidocr1-openvino"),
    "rapidocr": ("rapidocr", "rapidocr3"),
    "rapidocr+openvino": ("rapidocr-ov", "rapidocr3-openvino"),
    "rapidocrlite": ("rapidocrlite", "rapidocrlite"),
    "tesseract": ("pytesseract", "tesseract-cli"),
    "tesserocr": ("tesserocr", "tesserocr"),
    "tesserocr-prep": ("tesserocr", "tesserocr-prep"),
}
# Debian packages that `apt-get install tesseract-ocr tesseract-ocr-chi-sim` adds to this image.
TESSERACT_DEBS = (
    "tesseract-ocr",
    "libtesseract5",
    "liblept5",
    "tesseract-ocr-eng",
    "tesseract-ocr-osd",
    "tesseract-ocr-chi-sim",
    "libopenjp2-7",
    "libwebpmux3",
)
TIMING_IMAGES = ("phone_capacity", "banner_capacity", "web_light_4k")


# --------------------------------------------------------------------------- worker (engine's interpreter)
# Everything below until the parent section runs inside the candidate's own virtualenv, which has the
# engine and Pillow but not rapidfuzz or this repository: keep it self-contained.


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _boxes_to_text(boxes: Any, texts: Any) -> str:
    """Reading order as the bot does it (bot.services.ocr.order_lines), so layout handling is the same for all."""
    from bot.services.ocr import order_lines

    items = []
    for box, text in zip(boxes, texts, strict=False):
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        items.append((min(xs), min(ys), max(xs), max(ys), text))
    return "\n".join(order_lines(items))


def _make_engine(kind: str, max_side: int) -> Any:
    """Return a function (image bytes) -> text for one adapter kind."""
    import io

    from PIL import Image

    def downscaled(data: bytes) -> Any:
        img = Image.open(io.BytesIO(data))
        img.load()
        img = img.convert("RGB")
        if max_side and max(img.size) > max_side:
            factor = max_side / max(img.size)
            size = (round(img.width * factor), round(img.height * factor))
            img = img.resize(size, Image.Resampling.LANCZOS)
        return img

    if kind.startswith("bot.services.ocr"):
        from bot.services import ocr as bot_ocr

        # "bot.services.ocr+det=T/B" tries other detector thresholds without editing the module.
        if "+det=" in kind:
            thresh, box = kind.split("+det=")[1].split("/")
            bot_ocr.DET_THRESH, bot_ocr.DET_BOX_THRESH = float(thresh), float(box)

        holder = bot_ocr._EngineHolder(bot_ocr.default_engine, os.cpu_count() or 1)
        return lambda data: bot_ocr._read(data, max_side or bot_ocr.MAX_SIDE, holder)[0]
    if kind.startswith("rapidocr1"):
        if kind == "rapidocr1-openvino":
            from rapidocr_openvino import RapidOCR
        else:
            from rapidocr_onnxruntime import RapidOCR
        tuned = {"use_cls": False, "det_limit_type": "max", "det_limit_side_len": 2000}
        engine = RapidOCR() if kind == "rapidocr1-defaults" else RapidOCR(**tuned)

        def run1(data: bytes) -> str:
            result, _ = engine(downscaled(data))
            result = result or []
            return _boxes_to_text([r[0] for r in result], [r[1] for r in result])

        return run1
    if kind in ("rapidocr3", "rapidocr3-openvino", "rapidocrlite"):
        import logging

        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        params: dict[str, Any] = {"Global.log_level": "warning"}
        if kind == "rapidocrlite":
            # The lite weights ship in the wheel; any other model type would be downloaded at run time.
            params |= {"Det.model_type": "lite", "Rec.model_type": "lite"}
        else:
            params |= {"Global.use_cls": False, "Det.limit_type": "max", "Det.limit_side_len": 2000}
        if kind == "rapidocr3-openvino":
            from rapidocr import EngineType

            params |= {"Det.engine_type": EngineType.OPENVINO, "Rec.engine_type": EngineType.OPENVINO}
        engine3 = RapidOCR(params=params)

        def run3(data: bytes) -> str:
            out = engine3(downscaled(data))
            return "" if out.txts is None else _boxes_to_text(list(out.boxes), list(out.txts))

        return run3
    if kind == "tesseract-cli":
        import pytesseract

        # Debian's tesseract is built with OpenMP, which spins on a busy 2-core box: one thread is ~4x faster.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        return lambda data: pytesseract.image_to_string(downscaled(data), lang="chi_sim+eng")
    if kind in ("tesserocr", "tesserocr-prep"):
        import tesserocr
        from PIL import ImageOps

        api = tesserocr.PyTessBaseAPI(path=TESSDATA, lang="chi_sim+eng")

        def run_tess(data: bytes) -> str:
            img = downscaled(data)
            if kind == "tesserocr-prep":
                # Tesseract wants dark text on light paper at ~30 px x-height: invert dark UIs, enlarge crops.
                img = ImageOps.grayscale(img)
                if sum(img.resize((32, 32)).getdata()) / 1024 < 128:
                    img = ImageOps.invert(img)
                if max(img.size) < 1600:
                    img = img.resize((img.width * 2, img.height * 2))
            api.SetImage(img)
            return api.GetUTF8Text()

        return run_tess
    raise SystemExit(f"unknown engine kind {kind}")


def worker(kind: str, manifest_path: str, repeats: int, max_side: int) -> None:
    """Load the engine, OCR every corpus image once, then time the timing images; JSON to stdout."""
    import resource

    sys.path.insert(0, str(ROOT))  # for bot.services.ocr (stdlib-only at import) in any candidate's venv
    manifest = json.loads(Path(manifest_path).read_text())
    rss_before = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    ocr = _make_engine(kind, max_side)
    ocr(Path(manifest["shots"][0]["path"]).read_bytes())  # some engines load models on first call
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb("VmRSS")
    shots = []
    for shot in manifest["shots"]:
        data = Path(shot["path"]).read_bytes()
        t = time.perf_counter()
        text = ocr(data)
        shots.append({"name": shot["name"], "text": text, "seconds": time.perf_counter() - t})
    timings: dict[str, list[float]] = {}
    for shot in manifest["shots"]:
        if shot["name"] in manifest["timing"]:
            data = Path(shot["path"]).read_bytes()
            timings[shot["name"]] = []
            for _ in range(repeats):
                t = time.perf_counter()
                ocr(data)
                timings[shot["name"]].append(time.perf_counter() - t)
    # The tesseract CLI does its work in a child process: count its peak too.
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    json.dump(
        {
            "load_seconds": load_s,
            "rss_before_mb": rss_before,
            "rss_loaded_mb": rss_loaded,
            "peak_rss_mb": _rss_mb("VmHWM") + child_peak,
            "shots": shots,
            "timings": timings,
        },
        sys.stdout,
    )


# --------------------------------------------------------------------------- parent: scoring


_WS = re.compile(r"\s+")
_NOT_COMPACT = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def stripped(text: str) -> str:
    """The task's normalisation: lowercase, all whitespace removed."""
    return _WS.sub("", text).lower()


def compact(text: str) -> str:
    """The matcher's normalisation (bot/core/normalize.py): NFKC, casefold, letters/digits/ideographs only."""
    return _NOT_COMPACT.sub("", unicodedata.normalize("NFKC", text).casefold())


def accuracy(truth: str, ocr: str, norm: Any = stripped) -> float:
    """1 - normalised edit distance between the truth and the best-matching region of the OCR output."""
    from rapidfuzz import fuzz

    a, b = norm(truth), norm(ocr)
    if not a or not b:
        return 0.0
    return fuzz.partial_ratio(a, b) / 100


def spaces_kept(truth: str, ocr: str) -> float | None:
    """Share of the truth's spaces found in the OCR region that matches it (None for CJK truths)."""
    from rapidfuzz import fuzz

    if re.search(r"[\u4e00-\u9fff]", truth):
        return None
    want = truth.lower().count(" ")
    flat = _WS.sub(" ", ocr.lower())
    if not want or not flat:
        return None
    align = fuzz.partial_ratio_alignment(truth.lower(), flat)
    return min(1.0, flat[align.dest_start : align.dest_end].count(" ") / want)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _du_mb(path: Path, skip: tuple[str, ...] = ()) -> float:
    total = 0
    for entry in path.iterdir():
        if entry.name.startswith(skip):
            continue
        if entry.is_dir() and not entry.is_symlink():
            total += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
        elif entry.is_file():
            total += entry.stat().st_size
    return total / 1e6


def install_size_mb(name: str, python: str) -> tuple[float, str]:
    """Megabytes on disk for the engine and its dependencies (pip/setuptools excluded), plus a note."""
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    size = _du_mb(site, skip=("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence"))
    note = "whole venv site-packages"
    if name.startswith(("tesseract", "tesserocr")):
        kb = 0
        for deb in TESSERACT_DEBS:
            out = subprocess.run(
                ["dpkg-query", "-Wf", "${Installed-Size}", deb], capture_output=True, text=True, check=False
            )
            kb += int(out.stdout or 0)
        note = f"site-packages {size:.0f} MB + Debian packages {kb / 1000:.0f} MB"
        size += kb / 1000
    if Path(python).absolute().parent.parent == (ROOT / ".venv").absolute():
        note = "shared project venv: not comparable"
    return size, note


def resolve(spec: str) -> tuple[str, str, str, int]:
    """'name[@maxside][=python]' -> (label, kind, python, max_side)."""
    label, _, python = spec.partition("=") if not spec.startswith("bot.services.ocr") else (spec, "", "")
    name, _, side = label.partition("@")
    name, plus, variant = name.partition("+")
    if name not in ENGINES:
        raise SystemExit(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    folder, kind = ENGINES[name]
    kind += plus + variant
    if not python:
        candidate = VENVS / folder / "bin" / "python" if folder else Path(sys.executable)
        python = str(candidate) if candidate.exists() else sys.executable
    return label, kind, python, int(side or 0)


def render_corpus(folder: Path, which: str = "main") -> dict[str, Any]:
    """Write the corpus images ("main", "hires" or "all") and a manifest the workers read."""
    sys.path.insert(0, str(ROOT))
    from tests.screenshots import corpus, hires_corpus

    chosen = {"main": corpus(), "hires": hires_corpus(), "all": corpus() + hires_corpus()}[which]
    shots = []
    for shot in chosen:
        path = folder / f"{shot.name}.{'png' if shot.jpeg_quality is None else 'jpg'}"
        path.write_bytes(shot.data())
        shots.append(
            {"name": shot.name, "path": str(path), "error": shot.error, "style": shot.style, "lang": shot.lang}
        )
    names = {s["name"] for s in shots}
    return {"shots": shots, "timing": [n for n in TIMING_IMAGES if n in names] or [shots[0]["name"]]}


def measure(spec: str, manifest: dict[str, Any], manifest_path: Path, repeats: int) -> dict[str, Any]:
    """Run one engine's worker and score what it read."""
    label, kind, python, max_side = resolve(spec)
    cmd = [python, __file__, "--worker", kind, "--manifest", str(manifest_path), "--repeats", str(repeats)]
    cmd += ["--max-side", str(max_side)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"engine": label, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    raw = json.loads(proc.stdout)
    truth = {s["name"]: s for s in manifest["shots"]}
    rows = []
    for shot in raw["shots"]:
        meta = truth[shot["name"]]
        rows.append(
            {
                **shot,
                "style": meta["style"],
                "lang": meta["lang"],
                "accuracy": accuracy(meta["error"], shot["text"]),
                "accuracy_compact": accuracy(meta["error"], shot["text"], compact),
                "spaces": spaces_kept(meta["error"], shot["text"]),
            }
        )
    size, size_note = install_size_mb(label, python)
    spaces = [r["spaces"] for r in rows if r["spaces"] is not None]
    timing = {
        name: {"median": statistics.median(v), "p95": _percentile(v, 0.95), "n": len(v)}
        for name, v in raw["timings"].items()
    }
    return {
        "engine": label,
        "python": python,
        "wall_seconds": time.perf_counter() - started,
        "mean_accuracy": statistics.mean(r["accuracy"] for r in rows),
        "min_accuracy": min(r["accuracy"] for r in rows),
        "mean_accuracy_compact": statistics.mean(r["accuracy_compact"] for r in rows),
        "accuracy_en": statistics.mean(r["accuracy"] for r in rows if r["lang"] == "en"),
        "accuracy_zh": statistics.mean(r["accuracy"] for r in rows if r["lang"] == "zh"),
        "found_95": sum(r["accuracy"] >= 0.95 for r in rows),
        "found_80": sum(r["accuracy"] >= 0.80 for r in rows),
        "spaces_kept": statistics.mean(spaces) if spaces else None,
        "corpus_median_seconds": statistics.median(r["seconds"] for r in rows),
        "timing": timing,
        "load_seconds": raw["load_seconds"],
        "rss_loaded_mb": raw["rss_loaded_mb"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "install_mb": size,
        "install_note": size_note,
        "shots": rows,
    }


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of the headline figures."""
    ok = [r for r in results if "error" not in r]
    timed = list(ok[0]["timing"]) if ok else list(TIMING_IMAGES)
    head = (
        "| engine | mean acc | min acc | acc en | acc zh | ≥0.95 / ≥0.80 | spaces kept | "
        + " | ".join(f"{name} s (median / p95)" for name in timed)
        + " | load s | peak RSS MB | install MB |\n|"
        + "---|" * (10 + len(timed))
        + "\n"
    )
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"| {r['engine']} | failed: {r['error']} |" + " |" * (8 + len(timed)))
            continue
        n = len(r["shots"])
        spaces = "n/a" if r["spaces_kept"] is None else f"{r['spaces_kept']:.0%}"
        times = " | ".join(
            f"{r['timing'][name]['median']:.2f} / {r['timing'][name]['p95']:.2f}" if name in r["timing"] else "-"
            for name in timed
        )
        lines.append(
            f"| {r['engine']} | {r['mean_accuracy']:.3f} | {r['min_accuracy']:.2f} | {r['accuracy_en']:.3f} "
            f"| {r['accuracy_zh']:.3f} | {r['found_95']}/{n} · {r['found_80']}/{n} | {spaces} | {times} "
            f"| {r['load_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['install_mb']:.0f} |"
        )
    return head + "\n".join(lines)


def per_shot(results: list[dict[str, Any]]) -> str:
    """Accuracy of every engine on every screenshot, to see where each one fails."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return ""
    head = "| screenshot | " + " | ".join(r["engine"] for r in ok) + " |\n|---|" + "---|" * len(ok) + "\n"
    lines = []
    for i, shot in enumerate(ok[0]["shots"]):
        lines.append(f"| {shot['name']} | " + " | ".join(f"{r['shots'][i]['accuracy']:.2f}" for r in ok) + " |")
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run either the comparison or one worker."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", help="name[@maxside][=python]; repeatable")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per timing image")
    parser.add_argument("--out", type=Path, help="write full results (texts included) as JSON here")
    parser.add_argument("--corpus", choices=("main", "hires", "all"), default="main")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--max-side", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.manifest, args.repeats, args.max_side)
        return 0
    specs = args.engine or ["bot.services.ocr"] + [
        name for name, (folder, _) in ENGINES.items() if folder and (VENVS / folder).exists()
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="ocr-compare-") as tmp:
        manifest = render_corpus(Path(tmp), args.corpus)
        manifest_path = Path(tmp) / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        for spec in specs:
            print(f"… {spec}", file=sys.stderr, flush=True)
            result = measure(spec, manifest, manifest_path, args.repeats)
            results.append(result)
            print(table([result]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print(table(results))
    print()
    print(per_shot(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
