"""The talk model: text about an error (a changelog line, advice) is held back from group auto-answers, still
answered when somebody asks; a pasted error is never held back; the model file is checked and reproducible."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.knowledge import load_knowledge
from bot.core.matcher import Matcher, get_matcher
from bot.core.talk import TALK_CHARS, features
from tests.test_knowledge import problems_of

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "knowledge"
# Written for these tests: a changelog line and a tip that name Anthropic's overload error, and the error itself.
CHANGELOG = "We now retry 529 overloaded_error responses with exponential backoff instead of failing the request."
TIP = "Tip: when you see 529 overloaded_error, Anthropic is overloaded; wait a minute and the SDK retries it for you."
PASTED = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."


@pytest.mark.parametrize("text", [CHANGELOG, TIP])
def test_talk_about_an_error_gets_no_reply_nobody_asked_for(text: str) -> None:
    matcher = get_matcher()
    d = matcher.diagnose(text, threshold=matcher.kb.thresholds.strict)
    assert d.cause is None
    assert "reads like talk about an error" in d.evidence


@pytest.mark.parametrize("text", [CHANGELOG, TIP])
def test_talk_about_an_error_is_still_answered_when_asked(text: str) -> None:
    d = get_matcher().diagnose(text)
    assert d.cause == "capacity"
    assert "reads like talk about an error" in d.evidence


def test_the_same_text_is_auto_answered_without_a_talk_model() -> None:
    matcher = get_matcher()
    bare = Matcher(replace(matcher.kb, talk=None))
    assert bare.diagnose(CHANGELOG, threshold=matcher.kb.thresholds.strict).cause == "capacity"


def test_an_error_pasted_alone_is_never_held_back_as_talk() -> None:
    matcher = get_matcher()
    d = matcher.diagnose(PASTED, threshold=matcher.kb.thresholds.strict)
    assert d.cause == "capacity" and "talk" not in d.evidence


def test_the_model_reads_a_bounded_part_of_a_long_text() -> None:
    head = "overloaded " * (TALK_CHARS // 11 + 1)
    assert features(head + "changelog " * 100_000) == features(head)


def test_a_knowledge_base_without_a_talk_model_loads(kb_copy: Path) -> None:
    (kb_copy / "talk.yaml").unlink()
    assert load_knowledge(kb_copy).talk is None


def test_a_bad_weight_line_names_file_and_line(kb_copy: Path) -> None:
    path = kb_copy / "talk.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = lines.index("weights: |") + 3
    lines[at] = "  w:overloaded lots"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert problems_of(kb_copy) == [f"{path}:{at + 1}: a weight line must be a feature and a number"]


def test_a_gate_out_of_range_is_refused(kb_copy: Path) -> None:
    path = kb_copy / "talk.yaml"
    text = path.read_text(encoding="utf-8")
    gate_line = next(line for line in text.splitlines() if line.startswith("gate:"))
    path.write_text(text.replace(gate_line, "gate: 1.5"), encoding="utf-8")
    (problem,) = problems_of(kb_copy)
    assert problem.endswith("gate must be a probability in (0, 1], got 1.5")


def test_the_shipped_model_is_what_the_training_script_makes_of_the_corpora(tmp_path: Path) -> None:
    """Nobody edits the weights by hand, and a corpus change is not shipped without retraining."""
    out = tmp_path / "talk.yaml"
    shipped = (SHIPPED / "talk.yaml").read_text(encoding="utf-8")
    gate = next(line for line in shipped.splitlines() if line.startswith("gate:")).split()[1]
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_talk.py"), "--gate", gate, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_text(encoding="utf-8") == shipped
