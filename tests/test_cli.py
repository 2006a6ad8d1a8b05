"""The claude-doctor command line: diagnose (text, stdin, --json, --batch), eval and check-kb."""

from __future__ import annotations

import io
import json
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
    assert b"first 65536 characters" in result.stderr


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
