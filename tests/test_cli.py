"""The claude-doctor command line: diagnose (text, stdin, --json, --batch), eval and check-kb."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import _parser, cmd_diagnose, main

ROOT = Path(__file__).resolve().parent.parent
CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond"


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, cwd=ROOT, timeout=60
    )


def test_diagnose_names_capacity_and_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", CAPACITY]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3. Capacity")
    assert "1. Wait a few minutes" in out


def test_diagnose_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--lang", "zh", CAPACITY]) == 0
    assert "访问量太高" in capsys.readouterr().out


def test_diagnose_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--json", CAPACITY]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["cause"] == "capacity" and obj["known"] is None and obj["runner_up"] is None


def test_diagnose_reads_stdin() -> None:
    result = run_cli("diagnose", "--json", "-", stdin=CAPACITY.encode())
    assert result.returncode == 0
    assert json.loads(result.stdout)["cause"] == "capacity"


def test_invalid_utf8_on_stdin_is_replaced_with_a_warning() -> None:
    result = run_cli("diagnose", "--json", "-", stdin=b"\xff\xfe " + CAPACITY.encode())
    assert result.returncode == 0
    assert json.loads(result.stdout)["cause"] == "capacity"
    assert b"not valid UTF-8" in result.stderr


@pytest.mark.parametrize("text", ["", "   ", "🙂🙂", "\x01\x02"])
def test_unusable_text_exits_2_with_a_message(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claude-doctor: ") and "Traceback" not in err


def test_unusable_text_in_json_mode_is_an_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--json", "   "]) == 2
    assert "error" in json.loads(capsys.readouterr().out)


def test_megabyte_on_stdin_is_answered_with_a_note() -> None:
    result = run_cli("diagnose", "--json", "-", stdin=b"hello world " * 90_000)
    assert result.returncode == 0
    assert json.loads(result.stdout)["cause"] is None
    assert b"first and last 32768 characters" in result.stderr


def test_no_text_at_all_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose"]) == 2
    assert "standard input" in capsys.readouterr().err


def test_batch_keeps_order_and_survives_bad_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        json.dumps({"text": CAPACITY}),
        "not json",
        json.dumps({"txt": "wrong key"}),
        "",
        json.dumps({"text": "hello friends"}),
        json.dumps({"text": 5}),
    ]
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode() + b"\xff\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    out = io.StringIO()
    assert cmd_diagnose(_parser().parse_args(["diagnose", "--batch"]), out) == 0
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(results) == 7
    assert results[0]["cause"] == "capacity"
    assert all("error" in results[i] for i in (1, 2, 3, 5, 6))
    assert results[4]["cause"] is None and "error" not in results[4]


def test_eval_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(ROOT / "tests/data/corpus/research.tsv")]) == 0
    out = capsys.readouterr().out
    assert "top-1 on the four causes" in out and "false positives" in out and "confusion" in out


def test_eval_leaves_out_texts_seen_in_other_corpora(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held = tmp_path / "held.jsonl"
    tuned = tmp_path / "tuned.jsonl"
    held.write_text(
        '{"causes": ["capacity"], "text": "529 Overloaded"}\n{"causes": ["none"], "text": "hello there"}\n',
        encoding="utf-8",
    )
    tuned.write_text('{"causes": ["capacity"], "text": "529 overloaded "}\n', encoding="utf-8")
    assert main(["eval", str(held), "--unseen-against", str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "left out 1 case(s)" in out and "cases: 1" in out


def test_check_kb_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-kb", str(ROOT / "knowledge")]) == 0
    assert capsys.readouterr().out.startswith("knowledge base OK")


def test_check_kb_broken_copy_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(ROOT / "knowledge", kb)
    path = kb / "network.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("number: 1\n", "number: 1\nnumbr: 2\n"), encoding="utf-8")
    assert main(["check-kb", str(kb)]) == 1
    assert f"{path}:5: unknown key 'numbr'" in capsys.readouterr().err


def test_knowledge_dir_points_the_whole_program_elsewhere(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(ROOT / "knowledge", kb)
    (kb / "ui.yaml").write_text("kind: strings\nstrings: {}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "diagnose", CAPACITY],
        capture_output=True,
        cwd=ROOT,
        env={"KNOWLEDGE_DIR": str(kb), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1
    assert b"the UI string 'no_match' is missing" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(("state", "code"), [("ok", 0), ("minor", 0), ("http500", 1), ("malformed", 1)])
def test_status_command_reads_the_page_named_by_status_page_url(state: str, code: int) -> None:
    from tests.fake_statuspage import FakeStatuspage

    with FakeStatuspage(state) as page:
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "status", "--json"],
            capture_output=True,
            cwd=ROOT,
            env={"STATUS_PAGE_URL": page.base_url, "PATH": "/usr/bin:/bin"},
            timeout=30,
        )
    assert result.returncode == code
    if code == 0:
        assert json.loads(result.stdout)["indicator"] in ("none", "minor")
    else:
        assert result.stderr.decode().startswith("claude-doctor: status page unavailable: ")
        assert b"Traceback" not in result.stderr
        failure = json.loads(result.stdout)
        assert failure["state"] == "unavailable" and failure["error"].startswith("status page unavailable: ")


def test_health_without_a_running_bot_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["health"]) == 1
    assert capsys.readouterr().err.startswith("claude-doctor: unhealthy: no heartbeat at ")
    beat = tmp_path / "heartbeat"
    beat.touch()
    assert main(["health"]) == 0
    old = beat.stat().st_mtime - 3600
    os.utime(beat, (old, old))
    assert main(["health"]) == 1


def test_batch_where_every_line_failed_exits_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'not json\n{"text": ""}\n'), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    out = io.StringIO()
    assert cmd_diagnose(_parser().parse_args(["diagnose", "--batch"]), out) == 1
    assert all("error" in json.loads(line) for line in out.getvalue().splitlines())


def test_answers_do_not_depend_on_the_process_hash_seed() -> None:
    corpus = ROOT / "tests" / "data" / "corpus" / "dev3.jsonl"
    lines = corpus.read_bytes()
    outputs = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "diagnose", "--batch"],
            input=lines,
            capture_output=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
        assert result.returncode == 0
        outputs.append([json.loads(line) for line in result.stdout.splitlines()])
    assert len(outputs[0]) == len(lines.splitlines())
    assert sum("cause" in o for o in outputs[0]) > 500
    assert outputs[0] == outputs[1]


# --------------------------------------------------------------------------- screenshots (--image)

READ_NOTE_EN = "(Read from the image.)"
READ_NOTE_ZH = "（以下内容识别自图片。）"
NO_OCR_LINE = (
    "claude-doctor: screenshots are not enabled here (pip install 'claude-doctor[ocr]'); paste the text instead\n"
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated screenshots and broken image files; skips without the OCR extra or the CJK fonts."""
    from bot.services.ocr import ocr_available

    if not ocr_available():
        pytest.skip("OCR extra not installed (pip install 'claude-doctor[ocr]')")
    screenshots = pytest.importorskip("tests.screenshots", reason="Pillow not installed")
    if not screenshots.fonts_available():
        pytest.skip("fonts-noto-cjk not installed: cannot render test screenshots")
    folder = tmp_path_factory.mktemp("images")
    capacity = screenshots.render(screenshots.ERRORS_EN[0], "banner")
    files = {
        "capacity": capacity,
        "network_zh": screenshots.render(screenshots.ERRORS_ZH[0], "banner", seed=1, jpeg_quality=80),
        "text_named_png": b"Due to unexpected capacity constraints, Claude is unable to respond\n",
        "truncated": capacity[: len(capacity) * 2 // 3],
    }
    paths = {"missing": folder / "missing.png"}
    for name, data in files.items():
        paths[name] = folder / (f"{name}.jpg" if name == "network_zh" else f"{name}.png")
        paths[name].write_bytes(data)
    return paths


def test_image_names_capacity_after_a_read_note(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--image", str(images["capacity"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == READ_NOTE_EN
    assert lines[1].startswith("3. Capacity")
    assert any(line.startswith("1. Wait a few minutes") for line in lines)


def test_image_reply_follows_lang(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--lang", "zh", "--image", str(images["capacity"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(READ_NOTE_ZH + "\n") and "访问量太高" in out


def test_image_json_has_source_and_text(images: dict[str, Path]) -> None:
    result = run_cli("diagnose", "--json", "--image", str(images["capacity"]))
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    assert obj["cause"] == "capacity" and obj["source"] == "image"
    assert "capacity constraints" in obj["text"] and len(obj["text"]) <= 500
    assert {"confidence", "known", "runner_up", "evidence"} <= obj.keys()


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing", "No such file or directory"),
        ("text_named_png", "not an image"),
        ("truncated", "damaged or incomplete"),
    ],
)
def test_bad_image_is_one_line_and_exit_2(images: dict[str, Path], name: str, words: str) -> None:
    result = run_cli("diagnose", "--image", str(images[name]))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("claude-doctor: ") and words in err
    assert b"Traceback" not in result.stderr and result.stdout == b""


def test_bad_image_in_json_mode_is_an_error_object(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--json", "--image", str(images["truncated"])]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out)["reason"] == "corrupt" and "error" in json.loads(out)


def test_image_without_text_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pil = pytest.importorskip("PIL.Image", reason="Pillow not installed")
    from bot.services.ocr import ocr_available

    if not ocr_available():
        pytest.skip("OCR extra not installed")
    path = tmp_path / "blank.png"
    pil.new("RGB", (320, 120), (255, 255, 255)).save(path)
    assert main(["diagnose", "--image", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No text could be read" in err


def test_batch_mixes_text_and_image_lines_with_one_engine_load(
    images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.services import ocr

    loads = []
    real_engine = ocr.default_engine

    def counting_engine(threads: int) -> ocr.Engine:
        loads.append(threads)
        return real_engine(threads)

    # A fresh in-process engine for this test, built by the counting factory (both restored afterwards).
    monkeypatch.setattr(ocr, "_CLI_HOLDER", None)
    monkeypatch.setattr(ocr, "default_engine", counting_engine)
    lines = [
        {"text": CAPACITY},
        {"image": str(images["capacity"])},
        {"image": str(images["truncated"])},
        {"text": "hello friends"},
        {"image": str(images["network_zh"])},
        {"image": str(images["missing"])},
        {"image": str(images["text_named_png"])},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    out = io.StringIO()
    assert cmd_diagnose(_parser().parse_args(["diagnose", "--batch"]), out) == 0
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("cause", "error") for r in results] == [
        "capacity",
        "capacity",
        "error",
        None,
        "network",
        "error",
        "error",
    ]
    assert [r.get("source") for r in results] == [None, "image", None, None, "image", None, None]
    assert [r.get("reason") for r in results if "error" in r] == ["corrupt", "unreadable", "not_an_image"]
    assert results[2]["error"].startswith("line 3: ")
    assert len(loads) == 1


@pytest.mark.parametrize("how", ["ocr_available_false", "rapidocr_import_fails"])
def test_without_the_ocr_extra_images_get_one_line(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.services import ocr

    if how == "ocr_available_false":
        monkeypatch.setattr(ocr, "ocr_available", lambda: False)
    else:
        monkeypatch.setitem(sys.modules, "rapidocr", None)  # what an uninstalled package looks like to find_spec
    path = tmp_path / "shot.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["diagnose", "--image", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == NO_OCR_LINE and captured.out == ""
    assert main(["diagnose", "--json", "--image", str(path)]) == 2
    assert json.loads(capsys.readouterr().out)["reason"] == "not_enabled"
    stdin = f'{{"image": "{path}"}}\n{{"text": "{CAPACITY}"}}\n{{"image": "{path}"}}\n'.encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    out = io.StringIO()
    assert cmd_diagnose(_parser().parse_args(["diagnose", "--batch"]), out) == 0
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("cause", r.get("reason")) for r in results] == ["not_enabled", "capacity", "not_enabled"]


@pytest.mark.parametrize("failure", ["load", "read"])
def test_a_failing_engine_is_one_line_and_exit_1(
    failure: str, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.services import ocr

    def broken_engine(threads: int) -> ocr.Engine:
        if failure == "load":
            raise RuntimeError("model file\nis broken")

        def run(img: object) -> list[str]:
            raise RuntimeError("onnxruntime: bad input")

        return run

    monkeypatch.setattr(ocr, "_CLI_HOLDER", None)
    monkeypatch.setattr(ocr, "default_engine", broken_engine)
    assert main(["diagnose", "--image", str(images["capacity"])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ("OCR does not work here" if failure == "load" else "OCR failed on") in err


def test_image_and_text_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--image", "shot.png", CAPACITY]) == 2
    assert "--image" in capsys.readouterr().err


def test_eval_reports_asked_and_strict_side_by_side_per_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "real.jsonl"
    rows = [
        {"causes": ["capacity"], "lang": "en", "text": "API Error: 529 Overloaded"},
        {"causes": ["none"], "lang": "en", "text": "lunch at noon?"},
        {"causes": ["context"], "lang": "it", "text": "Limite di utilizzo raggiunto"},
        {"causes": ["capacity"], "text": "Claude 服务器繁忙"},
    ]
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert main(["eval", str(corpus)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("asked ") for line in lines) and any(line.startswith("strict ") for line in lines)
    langs = {line.split()[0]: line for line in lines if line[:3] in ("en ", "it ", "zh ")}
    assert set(langs) == {"en", "it", "zh"}
    assert langs["en"].split()[1] == "2"


def test_diagnose_json_gives_the_details_read_from_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--json", "Claude usage limit reached. Your limit will reset at 5pm (Asia/Shanghai)"]) == 0
    reset = json.loads(capsys.readouterr().out)["details"]["reset_at"]
    assert reset.endswith("T17:00:00+08:00")
    assert main(["diagnose", "--json", "prompt is too long: 215000 tokens > 200000 maximum"]) == 0
    details = json.loads(capsys.readouterr().out)["details"]
    assert (details["tokens"], details["limit"], details["over_by"]) == (215000, 200000, 15000)
    body = '{"type":"error","error":{"type":"overloaded_error"},"request_id":"req_011CZTEFvft13Daj"}'
    assert main(["diagnose", "--json", f"API Error: 529 {body}"]) == 0
    details = json.loads(capsys.readouterr().out)["details"]
    assert details["request_id"] == "req_011CZTEFvft13Daj" and details["status_code"] == 529


def test_diagnose_shows_the_request_id_with_when_to_quote_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", 'API Error: 529 {"type":"overloaded_error"} request_id req_011CZTEFvft13Daj']) == 0
    out = capsys.readouterr().out
    assert "req_011CZTEFvft13Daj" in out and "support" in out


def test_a_megabyte_log_with_the_error_at_its_end_is_diagnosed() -> None:
    log = b"2026-12-03T10:00:00Z INFO step ok\n" * 30_000 + b"API Error: 529 Overloaded\n"
    result = run_cli("diagnose", "--json", "-", stdin=log)
    assert result.returncode == 0 and json.loads(result.stdout)["cause"] == "capacity"


def test_diagnose_answers_traditional_chinese_in_traditional(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "Claude 現在無法回應，服務暫時中斷"]) == 0
    out = capsys.readouterr().out
    assert "服務中斷" in out and "服务中断" not in out
