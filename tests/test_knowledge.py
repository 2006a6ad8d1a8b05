"""The knowledge base loads, and every kind of breakage is reported with its file and line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.core.knowledge import KnowledgeError, load_knowledge

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(directory)
    return info.value.problems


def line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in {path}")


def test_shipped_knowledge_base_has_the_four_causes_numbered_as_in_the_article() -> None:
    kb = load_knowledge(SHIPPED)
    assert [(c.id, c.number) for c in kb.causes] == [("network", 1), ("service", 2), ("capacity", 3), ("context", 4)]


def test_every_cause_has_fix_steps_in_both_languages() -> None:
    kb = load_knowledge(SHIPPED)
    for cause in kb.causes:
        assert cause.fix is not None
        assert cause.fix["zh"] and cause.fix["en"]


def user_facing_texts() -> list[str]:
    kb = load_knowledge(SHIPPED)
    texts = [t for strings in kb.strings.values() for t in strings.values()]
    for entry in (*kb.causes, *kb.known):
        for localized in (entry.title, entry.name, entry.explanation, entry.answer):
            texts += list((localized or {}).values())
        texts += [step for steps in (entry.fix or {}).values() for step in steps]
    return texts


def test_no_referral_link_or_purchase_advice_reaches_a_reply() -> None:
    raw = "\n".join(p.read_text(encoding="utf-8") for p in SHIPPED.glob("*.yaml"))
    assert "i6ls" not in raw and "/links/" not in raw
    # Mirror sites may be recognised in what users paste, but the bot never recommends or sells one.
    for text in user_facing_texts():
        assert "镜像" not in text and "虚拟信用卡" not in text and "mirror" not in text.lower()


def test_folded_chinese_text_has_no_stray_spaces() -> None:
    kb = load_knowledge(SHIPPED)
    for cause in kb.causes:
        assert cause.explanation is not None
        assert not re.search(r"[\u4e00-\u9fff，。] [\u4e00-\u9fff]", cause.explanation["zh"])


def test_unknown_key_names_file_and_line(kb_copy: Path) -> None:
    path = kb_copy / "network.yaml"
    edit(path, "number: 1\n", "number: 1\ncolour: blue\n")
    assert f"{path}:{line_of(path, 'colour')}: unknown key 'colour'" in "\n".join(problems_of(kb_copy))


def test_missing_language_names_file_and_line(kb_copy: Path) -> None:
    path = kb_copy / "service.yaml"
    edit(path, "title:\n  zh: 服务中断：Claude 自身出了故障\n", "title:\n")
    problems = "\n".join(problems_of(kb_copy))
    assert re.search(rf"{re.escape(str(path))}:\d+: 'service' title is missing 'zh'", problems)


def test_duplicate_id_names_both_places(kb_copy: Path) -> None:
    path = kb_copy / "known.yaml"
    edit(path, "  - id: login\n", "  - id: billing\n")
    problems = "\n".join(problems_of(kb_copy))
    assert f"{path}:{line_of(path, 'id: billing')}: duplicate id 'billing'" not in problems
    assert re.search(
        rf"{re.escape(str(path))}:\d+: duplicate id 'billing' \(first defined at .*known.yaml:\d+\)", problems
    )


def test_signature_under_two_causes_is_refused(kb_copy: Path) -> None:
    path = kb_copy / "service.yaml"
    edit(
        path,
        "signatures:\n",
        'signatures:\n  - "Request timed out. Check your internet connection and proxy settings"\n',
    )
    problems = "\n".join(problems_of(kb_copy))
    assert f"{path}:{line_of(path, 'Request timed out')}: signature listed under two entries" in problems
    assert "'network'" in problems


def test_empty_fix_list_is_refused(kb_copy: Path) -> None:
    path = kb_copy / "capacity.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  en:\n    - Wait a few minutes")
    end = text.index("signatures:")
    path.write_text(text[:start] + "  en: []\n" + text[end:], encoding="utf-8")
    assert f"{path}:{line_of(path, 'en: []')}: 'capacity' fix (en) is empty" in problems_of(kb_copy)


def test_bad_yaml_names_file_and_line(kb_copy: Path) -> None:
    path = kb_copy / "context.yaml"
    edit(path, "number: 4\n", "number: [4\n")
    problems = problems_of(kb_copy)
    assert len(problems) == 1
    assert re.match(rf"{re.escape(str(path))}:\d+: invalid YAML", problems[0])


def test_bad_weight_names_file_and_line(kb_copy: Path) -> None:
    path = kb_copy / "network.yaml"
    edit(path, "  vpn: 0.55\n", "  vpn: high\n")
    problems = problems_of(kb_copy)
    where = f"{path}:{line_of(path, 'vpn: high')}"
    assert f"{where}: 'network' cues: the weight of 'vpn' must be a number in (0, 1], got 'high'" in problems


def test_a_word_list_entry_with_characters_matching_ignores_is_refused(kb_copy: Path) -> None:
    path = kb_copy / "matcher.yaml"
    edit(path, "foreign_words:\n", "foreign_words:\n  - c++\n")
    problems = problems_of(kb_copy)
    where = f"{path}:{line_of(path, '- c++')}"
    assert f"{where}: foreign_words: 'c++' has '++', which matching ignores" in problems


def test_a_gap_in_the_cause_numbers_is_reported(kb_copy: Path) -> None:
    (kb_copy / "capacity.yaml").unlink()
    expected = f"{kb_copy}: the 3 causes must be numbered 1-3 once each, got network 1, service 2, context 4"
    assert expected in problems_of(kb_copy)


def test_every_problem_is_reported_not_just_the_first(kb_copy: Path) -> None:
    edit(kb_copy / "network.yaml", "number: 1\n", "number: 1\ncolour: blue\n")
    edit(kb_copy / "service.yaml", "number: 2\n", "number: 2\nshape: round\n")
    assert len(problems_of(kb_copy)) == 2


def test_missing_directory_is_one_clear_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}: knowledge directory not found (set KNOWLEDGE_DIR to a directory)"
    ]


def test_a_new_error_string_needs_no_code_change(kb_copy: Path) -> None:
    from bot.core.matcher import Matcher

    text = "Flux capacitor desynchronised while contacting Claude"
    assert Matcher(load_knowledge(kb_copy)).diagnose(text).cause is None
    edit(kb_copy / "network.yaml", "signatures:\n", f'signatures:\n  - "{text}"\n')
    assert Matcher(load_knowledge(kb_copy)).diagnose(text).cause == "network"


def test_a_replacement_knowledge_base_must_define_every_string_the_bot_uses(kb_copy: Path) -> None:
    (kb_copy / "status.yaml").unlink()
    problems = problems_of(kb_copy)
    assert any("the UI string 'status_heading' is missing" in p for p in problems)


@pytest.mark.parametrize(
    ("name", "kind"), [("matcher.yaml", "matcher"), ("known.yaml", "known"), ("peak.yaml", "peak")]
)
def test_a_missing_required_file_breaks_the_knowledge_base(kb_copy: Path, name: str, kind: str) -> None:
    (kb_copy / name).unlink()
    assert f"{kb_copy}: no file with kind: {kind} (the shipped one is {name})" in problems_of(kb_copy)


def test_the_knowledge_base_ships_inside_the_package(tmp_path: Path) -> None:
    """pyproject maps knowledge/ into the package as bot.kbdata, and an installed copy (laid out here as a wheel
    lays it out, without building one: that would need the network) finds it from any folder."""
    import subprocess
    import sys
    import tomllib

    root = SHIPPED.parent
    tool = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert tool["package-dir"]["bot.kbdata"] == "knowledge" and "bot.kbdata" in tool["packages"]
    assert tool["package-data"]["bot.kbdata"] == ["*.yaml"]
    site = tmp_path / "site"
    shutil.copytree(root / "bot", site / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SHIPPED, site / "bot" / "kbdata")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "from bot.core.knowledge import default_knowledge_dir as d, load_knowledge; load_knowledge(); print(d())"
    result = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(site)!r}] + {sys.path[1:]!r}; {code}"],
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(site / "bot" / "kbdata")


def test_a_variant_without_words_is_reported_with_its_line(kb_copy: Path) -> None:
    path = kb_copy / "context.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("    words:\n"), text.index("    fix:\n      zh:\n        - 等到")
    path.write_text(text[:start] + "    words: []\n" + text[end:], encoding="utf-8")
    [problem] = problems_of(kb_copy)
    assert problem.startswith(f"{path}:{line_of(path, 'words: []')}:") and "words is empty" in problem


def test_an_unknown_key_in_a_variant_is_reported(kb_copy: Path) -> None:
    path = kb_copy / "context.yaml"
    edit(path, "  limit:\n    title:\n", "  limit:\n    colour: red\n    title:\n")
    [problem] = problems_of(kb_copy)
    assert f":{line_of(path, 'colour: red')}:" in problem and "unknown key 'colour'" in problem


def test_the_shipped_languages_are_english_and_chinese_with_traditional_converted() -> None:
    kb = load_knowledge(SHIPPED)
    assert (kb.languages, kb.reply_languages, kb.default_language) == (("en", "zh"), ("en", "zh", "zh-hant"), "en")


@pytest.mark.parametrize(
    ("code", "lang", "base", "zone"),
    [
        ("zh-TW", "zh-hant", "zh", "Asia/Shanghai"),
        ("zh-Hant-HK", "zh-hant", "zh", "Asia/Shanghai"),
        ("zh_CN.UTF-8", "zh", "zh", "Asia/Shanghai"),
        ("en-GB", "en", "en", "UTC"),
        ("de_DE.UTF-8", "en", "en", "UTC"),
        ("zhx", "en", "en", "UTC"),
        (None, "en", "en", "UTC"),
    ],
)
def test_a_language_code_resolves_to_a_reply_language_its_texts_and_its_zone(
    code: str | None, lang: str, base: str, zone: str
) -> None:
    kb = load_knowledge(SHIPPED)
    assert (kb.resolve_lang(code), kb.base_lang(code), kb.time_zone(code)) == (lang, base, zone)


@pytest.mark.parametrize(
    ("cause", "status", "peak"),
    [("network", False, False), ("service", True, False), ("capacity", True, True), ("context", False, True)],
)
def test_which_causes_carry_live_lines_comes_from_their_files(cause: str, status: bool, peak: bool) -> None:
    kb = load_knowledge(SHIPPED)
    assert (kb.wants_status(cause), kb.wants_peak(cause)) == (status, peak)


@pytest.mark.parametrize(
    ("name", "old", "new", "needle", "problem"),
    [
        ("languages.yaml", "default: en\n", "default: fr\n", "default: fr", "the default language 'fr' is not one"),
        ("languages.yaml", "    time_zone: UTC\n", "", "name: English", "language 'en' is missing 'time_zone'"),
        ("languages.yaml", "time_zone: UTC", "time_zone: Mars/Base", "Mars/Base", "time_zone: unknown time zone"),
        ("languages.yaml", "      zh-hant:", "      zh-latn:", "zh-latn", "no conversion makes it"),
        ("languages.yaml", "  en:\n", "  EN:\n", "EN:", "a language code is lower case"),
        ("languages.yaml", "also: [zh-tw,", "also: [zh,", "also: [zh,", "the code 'zh' is given twice"),
        ("service.yaml", "live: [status]", "live: [weather]", "weather", "'weather' is not a live line"),
        ("service.yaml", "number: 2\n", "number: 0\n", "number: 0", "number must be a whole number from 1, got 0"),
        ("ui.yaml", "cause_buttons_per_row: 2", "cause_buttons_per_row: 9", "per_row: 9", "a whole number 1-8"),
        ("known.yaml", "  - id: login\n", "  - id: other\n", "id: other", "'other' is reserved"),
        ("matcher.yaml", "min_ratio: 72", "min_ratio: 720", "720", "min_ratio must be a fuzzy-match ratio in (0, 100]"),
        ("matcher.yaml", "voiced_cue: 0.8", "voiced_cue: 8", "cue: 8", "voiced_cue must be a weight in (0, 1]"),
        ("matcher.yaml", "greeting_words: 4", "greeting_words: 4.5", "4.5", "must be a whole number >= 1, got 4.5"),
        ("matcher.yaml", "  spaceless_min: 6\n", "", "full_strength", "calibration is missing 'spaceless_min'"),
    ],
)
def test_a_broken_language_live_line_number_layout_or_calibration_names_file_and_line(
    kb_copy: Path, name: str, old: str, new: str, needle: str, problem: str
) -> None:
    path = kb_copy / name
    edit(path, old, new)
    problems = problems_of(kb_copy)
    assert any(p.startswith(f"{path}:{line_of(path, needle)}: ") and problem in p for p in problems), problems


def test_a_declared_language_is_required_of_every_text(kb_copy: Path) -> None:
    edit(kb_copy / "languages.yaml", "  zh:\n", "  fr:\n    name: Français\n    time_zone: Europe/Paris\n  zh:\n")
    problems = "\n".join(problems_of(kb_copy))
    path = kb_copy / "network.yaml"
    assert f"{path}:{line_of(path, 'title:') + 1}: 'network' title is missing 'fr'" in problems


def test_a_knowledge_base_without_languages_says_so_once(kb_copy: Path) -> None:
    (kb_copy / "languages.yaml").unlink()
    assert problems_of(kb_copy) == [f"{kb_copy}: no file with kind: languages (the shipped one is languages.yaml)"]


def test_two_causes_with_one_number_are_reported(kb_copy: Path) -> None:
    edit(kb_copy / "service.yaml", "number: 2\n", "number: 1\n")
    expected = (
        f"{kb_copy}: the 4 causes must be numbered 1-4 once each, got network 1, service 1, capacity 3, context 4"
    )
    assert expected in problems_of(kb_copy)


def test_also_naming_no_cause_is_reported_at_its_signature(kb_copy: Path) -> None:
    path = kb_copy / "service.yaml"
    edit(path, "signatures:\n", "signatures:\n  - text: Claude went fishing for a while\n    also: weather\n")
    assert f"{path}:{line_of(path, 'went fishing')}: 'also' must name another cause, got 'weather'" in problems_of(
        kb_copy
    )


def test_a_line_break_written_between_chinese_characters_stays() -> None:
    help_zh = load_knowledge(SHIPPED).strings["help"]["zh"]
    assert "切换语言。\n在群组里" in help_zh
