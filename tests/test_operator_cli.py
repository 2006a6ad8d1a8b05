"""`claude-doctor misses` and `stats` read the record through the async store, and say so when there is none."""

from __future__ import annotations

import asyncio
import io
import json
from argparse import Namespace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.matcher import get_matcher
from bot.operator_cli import cmd_misses, cmd_stats
from bot.services.ledger import UNRECOGNISED
from bot.services.sqlite_store import SqliteStore


def _fill(data_dir: Path) -> None:
    async def fill() -> None:
        store = SqliteStore(data_dir)
        now = datetime.now(UTC)
        for n, text in enumerate(["flux capacitor error 17", "flux capacitor error 18", "something else entirely"]):
            await store.record(
                UNRECOGNISED, 0.1, lang="en", how="private", kb_version="v", now=now, text=text, user_id=n
            )
        await store.record("capacity", 0.9, lang="zh", how="group", kb_version="v", now=now)
        await store.close()

    asyncio.run(fill())


@pytest.fixture(autouse=True)
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_misses_are_grouped_by_likeness(tmp_path: Path) -> None:
    _fill(tmp_path)
    out = io.StringIO()
    assert cmd_misses(Namespace(data_dir=str(tmp_path), export=None), get_matcher(), out) == 0
    assert out.getvalue().splitlines()[0] == "3 miss(es) in 2 group(s), the most frequent first"


def test_misses_export_as_jsonl_with_unlabelled_causes(tmp_path: Path) -> None:
    _fill(tmp_path)
    export = tmp_path / "misses.jsonl"
    assert cmd_misses(Namespace(data_dir=str(tmp_path), export=str(export)), get_matcher(), io.StringIO()) == 0
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["text"] for r in rows] == [
        "flux capacitor error 17",
        "flux capacitor error 18",
        "something else entirely",
    ]
    assert {tuple(r["causes"]) for r in rows} == {("?",)}


def test_stats_count_the_period(tmp_path: Path) -> None:
    _fill(tmp_path)
    out = io.StringIO()
    assert cmd_stats(Namespace(data_dir=str(tmp_path), days=7), get_matcher(), out) == 0
    assert "answers: 4; not recognised: 3 (75.0%); misses kept: 3" in out.getvalue()


def test_a_folder_the_bot_never_used_is_an_error_and_stays_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo"
    assert cmd_stats(Namespace(data_dir=str(typo), days=7), get_matcher(), io.StringIO()) == 1
    assert "no claude-doctor.sqlite3 in" in capsys.readouterr().err
    assert not typo.exists()
