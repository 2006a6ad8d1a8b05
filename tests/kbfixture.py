"""A knowledge base with a fifth cause and a third language, built from the shipped one in a temporary folder, to
show that causes and languages are data: the core, the CLI, the console and the bot must take it with no code change.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge"

# The fifth cause: the reader's clock is wrong, so signed requests are refused.
FIFTH_CAUSE = "clock"
FIFTH_NUMBER = 5
FIFTH_NAME = "Clock out of sync"
# Its error as Claude would show it; no signature of the shipped knowledge base is like it.
FIFTH_ERROR = "Request rejected: your device clock differs from the server time by more than five minutes"
# The live lines it carries: the status line (a time service outage shows there), not the peak-hours line.
FIFTH_LIVE = ("status",)
# The third language, and the mark every one of its placeholder translations begins with.
THIRD_LANG = "fr"
THIRD_MARK = "[fr] "
THIRD_ZONE = "Europe/Paris"
# Five causes lay out better three to a row.
BUTTONS_PER_ROW = 3

_FIFTH = {
    "kind": "cause",
    "id": FIFTH_CAUSE,
    "number": FIFTH_NUMBER,
    "live": list(FIFTH_LIVE),
    "name": {"zh": "时钟不同步", "en": FIFTH_NAME},
    "aliases": ["clock", "time", "时钟"],
    "title": {"zh": "时钟不同步：你设备上的时间不对", "en": "Clock out of sync: your device's time is wrong"},
    "explanation": {
        "zh": "你设备上的时间和服务器相差太多，签名过的请求会被拒绝。",
        "en": "Your device's time is too far from the server's, so signed requests are refused.",
    },
    "fix": {
        "zh": ["打开系统设置，开启自动同步时间。", "同步后刷新页面再试。"],
        "en": ["Turn on automatic time in your system settings.", "Reload the page and try again."],
    },
    "signatures": [FIFTH_ERROR, "设备时间与服务器时间相差超过五分钟，请求被拒绝"],
    "cues": {"clock is wrong": 0.6, "时间不对": 0.6},
}


def build_kb(tmp_path: Path) -> Path:
    """A copy of the shipped knowledge base in `tmp_path`/kb with the fifth cause (FIFTH_*), the third language
    (every text translated as THIRD_MARK + its English) and BUTTONS_PER_ROW; returns its folder."""
    target = tmp_path / "kb"
    shutil.copytree(SHIPPED, target)
    (target / f"{FIFTH_CAUSE}.yaml").write_text(_dump(_FIFTH), encoding="utf-8")
    for path in sorted(target.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data.get("kind") == "languages":
            data["languages"][THIRD_LANG] = {"name": "Français", "time_zone": THIRD_ZONE}
        else:
            data = _translated(data)
        if data.get("kind") == "strings" and "cause_buttons_per_row" in data:
            data["cause_buttons_per_row"] = BUTTONS_PER_ROW
        path.write_text(_dump(data), encoding="utf-8")
    return target


def _translated(node: Any) -> Any:
    """The node with a third-language text beside every English one (a text is a mapping with en and zh)."""
    if isinstance(node, dict):
        out = {key: _translated(value) for key, value in node.items()}
        if set(node) == {"en", "zh"}:
            english = node["en"]
            out[THIRD_LANG] = [THIRD_MARK + s for s in english] if isinstance(english, list) else THIRD_MARK + english
        return out
    if isinstance(node, list):
        return [_translated(item) for item in node]
    return node


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
