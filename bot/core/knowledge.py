"""Load and validate the YAML knowledge base: causes, known non-causes, matcher calibration and UI strings."""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.core.normalize import LETTERS, clean, compact, weight
from bot.core.peak import resolve_tz
from bot.core.talk import TalkModel

# Without one of these the bot still starts but behaves differently (no thresholds, no other programs' errors), so a
# knowledge base lacking one is broken rather than smaller.
REQUIRED_KINDS = ("languages", "known", "strings", "matcher", "peak")
# Script variants the code derives from a base language by conversion (replies.localize, with OpenCC), so they need no
# texts of their own: a languages file may offer one under the language it is converted from.
SCRIPT_CONVERSIONS = {"zh-hant": "zh"}
# The live lines a cause may carry under its diagnosis: the status page's, and the peak hours'.
LIVE_LINES = ("status", "peak")
# Telegram shows at most eight buttons in a row.
MAX_BUTTONS_PER_ROW = 8
_LANG_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# The evaluation's labels and answers beside the causes: an entry named so could not be told from them.
_RESERVED_IDS = ("other", "none", "known")
_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# YAML folds a line break into a space, which is wrong between two Chinese characters. A line break that is still
# one was written in a literal block (|) on purpose, and stays.
_CJK_FOLD = re.compile(
    r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])[^\S\n]+(?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])"
)

Localized = dict[str, str]


class KnowledgeError(Exception):
    """The knowledge base is broken; `problems` holds one 'file:line: problem' line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Signature:
    """A verbatim error string; `also` names a second cause the same message points to."""

    text: str
    compact: str
    entry: str
    also: str | None = None


@dataclass(frozen=True)
class Variant:
    """A kind of a cause with its own advice (cause 4: a chat too long, or a used-up plan), told by its words."""

    id: str
    title: Localized
    words: tuple[str, ...]
    fix: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Entry:
    """A cause of the article (kind 'cause') or a real error that is none of them (kind 'known')."""

    id: str
    kind: str
    title: Localized
    signatures: tuple[Signature, ...]
    cues: dict[str, float]
    error_types: dict[str, float]
    status_codes: dict[int, float]
    exceptions: dict[str, float]
    patterns: dict[str, float] = field(default_factory=dict)
    number: int | None = None
    name: Localized | None = None
    aliases: tuple[str, ...] = ()
    explanation: Localized | None = None
    fix: dict[str, tuple[str, ...]] | None = None
    answer: Localized | None = None
    variants: tuple[Variant, ...] = ()
    # Which live lines (LIVE_LINES) a diagnosis of this cause carries.
    live: frozenset[str] = frozenset()

    def variant(self, variant_id: str | None) -> Variant | None:
        """The variant with this id, if the entry has it."""
        return next((v for v in self.variants if v.id == variant_id), None)


@dataclass(frozen=True)
class Language:
    """A language replies are written in: a base language, in which every text is written, or a script variant
    converted from one (`base` names it; a base language's `base` is itself)."""

    code: str
    name: str
    base: str
    time_zone: str
    # Other language codes (Telegram's, a locale's) answered in this language, such as zh-tw for zh-hant.
    also: tuple[str, ...] = ()

    @property
    def is_variant(self) -> bool:
        return self.base != self.code


@dataclass(frozen=True)
class TriageOption:
    """An answer to a triage question: it leads to another question (`next`), to a cause (and maybe its kind), or,
    with neither, to "how to tell the four apart"."""

    label: Localized
    next: str | None = None
    cause: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class TriageQuestion:
    """One question of the guided triage, with its answers as buttons."""

    id: str
    text: Localized
    options: tuple[TriageOption, ...]


@dataclass(frozen=True)
class Triage:
    """The question tree asked when a report names no error the matcher recognises."""

    start: str
    questions: dict[str, TriageQuestion]
    # How long a group's triage buttons stay answerable, in minutes.
    timeout_minutes: int = 15


# A triage asks at most this many questions before it lands: more and people give up.
TRIAGE_DEPTH = 3


@dataclass(frozen=True)
class Thresholds:
    """Confidence levels: `asked` where somebody asked, `strict` for unprompted group replies."""

    asked: float = 0.5
    strict: float = 0.8
    runner_up_ratio: float = 0.75


@dataclass(frozen=True)
class ContextFactors:
    """How much cue-only matches count by context; `foreign` scales all but strong signatures."""

    claude_and_trouble: float = 1.0
    claude: float = 0.85
    domain_and_trouble: float = 0.9
    domain: float = 0.75
    question: float = 0.6
    trouble: float = 0.55
    terse: float = 0.7
    impersonal: float = 0.6
    neither: float = 0.4
    foreign: float = 0.4
    foreign_and_claude: float = 0.75
    quoted: float = 0.85
    advice: float = 0.35


@dataclass(frozen=True)
class Calibration:
    """How the matcher weighs fuzzy matches, typos, run-together text and short messages (matcher.yaml's
    `calibration`, where each is explained)."""

    full_strength: float
    min_ratio: float
    short_signature: float
    short_min_ratio: float
    truncated_min_ratio: float
    middle_min_ratio: float
    middle_min_weight: float
    specific_status: float
    token_typo_ratio: float
    voiced_cue: float
    quoted_cue: float
    typo_min_letters: int
    typo_two_edits: int
    spaceless_letters: int
    spaceless_ratio: int
    spaceless_min: int
    greeting_words: int
    status_question_words: int


# What each calibration value is and its range: "ratio" a fuzzy-match ratio (0-100], "weight" a cue or evidence
# weight (0-1], "size" an amount of information in letters (> 0), "count" a whole number (>= 1).
_CALIBRATION_KINDS = {
    "full_strength": "size",
    "min_ratio": "ratio",
    "short_signature": "size",
    "short_min_ratio": "ratio",
    "truncated_min_ratio": "ratio",
    "middle_min_ratio": "ratio",
    "middle_min_weight": "size",
    "specific_status": "weight",
    "token_typo_ratio": "ratio",
    "voiced_cue": "weight",
    "quoted_cue": "weight",
    "typo_min_letters": "count",
    "typo_two_edits": "count",
    "spaceless_letters": "count",
    "spaceless_ratio": "count",
    "spaceless_min": "count",
    "greeting_words": "count",
    "status_question_words": "count",
}


# libyaml parses the knowledge base about ten times faster than pure Python, with the same line marks.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# What a word-list entry may hold: anything else is dropped when text is split into words.
_UNMATCHED = re.compile(rf"[^{LETTERS}\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\s'./_-]")
VOCABULARIES = (
    "claude_words",
    "domain_words",
    "trouble_words",
    "question_words",
    "advice_words",
    "foreign_words",
    "elsewhere_words",
    "chatty_words",
    "negations",
    "greeting_words",
    "status_questions",
    "filler_words",
)


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything the program knows, loaded from one directory."""

    directory: Path
    causes: tuple[Entry, ...]
    known: tuple[Entry, ...]
    strings: dict[str, Localized]
    thresholds: Thresholds
    vocabularies: dict[str, tuple[str, ...]]
    context_factors: ContextFactors = field(default_factory=ContextFactors)
    terse_words: int = 6
    peak: dict[str, Any] | None = None
    triage: Triage | None = None
    # Without one, no diagnosis is held back from group auto-answers as talk about an error.
    talk: TalkModel | None = None
    # Required of a matcher file, so always set by load_knowledge.
    calibration: Calibration | None = None
    # Every reply language, the base languages first in their declared order, then the script variants.
    language_table: tuple[Language, ...] = ()
    default_language: str = ""
    cause_buttons_per_row: int = 2
    _by_id: dict[str, Entry] = field(default_factory=dict, repr=False)

    def entry(self, entry_id: str) -> Entry:
        """The cause or known entry with this id."""
        return self._by_id[entry_id]

    @property
    def cause_ids(self) -> tuple[str, ...]:
        """The causes' ids in the order of their numbers."""
        return tuple(c.id for c in self.causes)

    def cause_by_number(self, number: int) -> Entry | None:
        """The cause with this number (1 to the number of causes), if any."""
        return next((c for c in self.causes if c.number == number), None)

    def wants_status(self, cause_id: str | None) -> bool:
        """Whether a diagnosis of this cause carries the live status line (so the status page is worth asking)."""
        entry = self._by_id.get(cause_id or "")
        return entry is not None and "status" in entry.live

    def wants_peak(self, cause_id: str | None) -> bool:
        """Whether a diagnosis of this cause carries the peak-hours line."""
        entry = self._by_id.get(cause_id or "")
        return entry is not None and "peak" in entry.live

    @property
    def languages(self) -> tuple[str, ...]:
        """The base languages: those every text of the knowledge base is written in, in their declared order."""
        return tuple(lang.code for lang in self.language_table if not lang.is_variant)

    @property
    def reply_languages(self) -> tuple[str, ...]:
        """Every language a reply can be in: the base languages, then the script variants converted from them."""
        return tuple(lang.code for lang in self.language_table)

    def language(self, code: str) -> Language:
        """The reply language `code` resolves to (the default language for one the knowledge base lacks)."""
        wanted = self.resolve_lang(code)
        return next(lang for lang in self.language_table if lang.code == wanted)

    def resolve_lang(self, code: str | None) -> str:
        """The reply language for a Telegram language code or a locale ('zh-TW', 'de_DE.UTF-8'): the language
        whose code or other codes match it most closely, else the default language."""
        tag = (code or "").strip().lower().replace("_", "-").split(".")[0].split("@")[0]
        best, best_len = self.default_language, 0
        for lang in self.language_table:
            for known in (lang.code, *lang.also):
                if (tag == known or tag.startswith(known + "-")) and len(known) > best_len:
                    best, best_len = lang.code, len(known)
        return best

    def base_lang(self, lang: str | None) -> str:
        """The base language the texts for a reply language are taken from (zh for zh-hant)."""
        return self.language(lang or "").base

    def time_zone(self, lang: str | None) -> str:
        """The time zone assumed for a reader of this language until they choose one."""
        return self.language(lang or "").time_zone

    def text(self, key: str, lang: str, **values: object) -> str:
        """A UI string in the language (its base language's text), with its {placeholders} filled in."""
        template = self.strings[key][self.base_lang(lang)]
        return template.format(**values) if values else template

    @property
    def signature_count(self) -> int:
        return sum(len(e.signatures) for e in (*self.causes, *self.known))


def base_lang(lang: str, kb: KnowledgeBase | None = None) -> str:
    """The base language of a reply language in `kb` (default: `default_knowledge()`); see KnowledgeBase.base_lang."""
    return (kb or default_knowledge()).base_lang(lang)


_DEFAULT_KB: dict[str, KnowledgeBase] = {}


def default_knowledge() -> KnowledgeBase:
    """The knowledge base of `default_knowledge_dir()`, loaded once: for callers that were not handed one."""
    key = str(default_knowledge_dir().resolve())
    if key not in _DEFAULT_KB:
        _DEFAULT_KB[key] = load_knowledge(key)
    return _DEFAULT_KB[key]


def shipped_knowledge_dir() -> Path:
    """The knowledge base installed with the package (`bot.kbdata`, mapped from knowledge/ in pyproject.toml), or
    the checkout's knowledge/ when running from source or an editable install."""
    try:
        for item in importlib.resources.files("bot.kbdata").iterdir():
            if isinstance(item, Path) and item.suffix == ".yaml":
                return item.resolve().parent
    except (ImportError, OSError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / "knowledge"


def default_knowledge_dir() -> Path:
    """The knowledge base for callers that were not given one: the shipped one (KNOWLEDGE_DIR is read by
    bot.settings, and the front ends pass its folder in)."""
    return shipped_knowledge_dir()


def knowledge_version(directory: str | os.PathLike[str] | None = None) -> str:
    """A content hash of the knowledge base's files (12 hex digits): which knowledge answered, in /stats, logs and
    `--version`; it changes with any edit and with nothing else."""
    root = Path(directory) if directory is not None else default_knowledge_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_knowledge(directory: str | os.PathLike[str] | None = None) -> KnowledgeBase:
    """Load every *.yaml file of the directory, or raise KnowledgeError listing every problem found."""
    root = Path(directory) if directory is not None else default_knowledge_dir()
    problems: list[str] = []
    if not root.is_dir():
        raise KnowledgeError([f"{root}: knowledge directory not found (set KNOWLEDGE_DIR to a directory)"])
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise KnowledgeError([f"{root}: no *.yaml files in the knowledge directory"])
    acc = _Accumulator(problems)
    parsed = [(reader, reader.parse()) for reader in (_FileReader(path, acc) for path in files)]
    # The languages come first: every text of the other files is checked against them.
    parsed.sort(key=lambda item: item[1] is None or item[1][2] != "languages")
    for reader, found in parsed:
        if found is not None and found[2] == "languages":
            reader.dispatch(*found)
    if not acc.language_table:
        # Without the languages every text would be reported as wrong: say what keeps them from being read alone.
        if not problems:
            problems.append(f"{root}: no file with kind: languages (the shipped one is {_KIND_FILES['languages']})")
        raise KnowledgeError(problems)
    for reader, found in parsed:
        if found is not None and found[2] != "languages":
            reader.dispatch(*found)
    acc.check_whole(root)
    if problems:
        raise KnowledgeError(problems)
    by_id = {e.id: e for e in (*acc.causes, *acc.known)}
    return KnowledgeBase(
        directory=root,
        causes=tuple(sorted(acc.causes, key=lambda c: c.number or 0)),
        known=tuple(acc.known),
        strings=acc.strings,
        thresholds=acc.thresholds or Thresholds(),
        vocabularies={name: tuple(acc.vocabularies.get(name, ())) for name in VOCABULARIES},
        context_factors=acc.context_factors or ContextFactors(),
        terse_words=acc.terse_words,
        peak=acc.peak,
        triage=acc.triage,
        talk=acc.talk,
        calibration=acc.calibration,
        language_table=acc.language_table,
        default_language=acc.default_language,
        cause_buttons_per_row=acc.cause_buttons_per_row or 2,
        _by_id=by_id,
    )


class _Accumulator:
    """What the files add up to, plus the cross-file checks (duplicate ids and signatures)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.causes: list[Entry] = []
        self.known: list[Entry] = []
        self.strings: dict[str, Localized] = {}
        self.thresholds: Thresholds | None = None
        self.vocabularies: dict[str, list[str]] = {}
        self.context_factors: ContextFactors | None = None
        self.calibration: Calibration | None = None
        self.terse_words = 6
        self.peak: dict[str, Any] | None = None
        self.triage: Triage | None = None
        self.talk: TalkModel | None = None
        # Where each triage question is defined ("" for the start line), so a problem names its line.
        self.triage_places: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.signatures: dict[str, tuple[str, str]] = {}
        self.string_places: dict[str, str] = {}
        self.kinds: set[str] = set()
        self.language_table: tuple[Language, ...] = ()
        self.default_language = ""
        # Set by at most one strings file; where, so a second one can be told where the first is.
        self.cause_buttons_per_row: int | None = None
        self.layout_place = ""

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang.code for lang in self.language_table if not lang.is_variant)

    def add_entry(self, entry: Entry, where: str, sig_places: list[str]) -> None:
        if entry.id in self.ids:
            self.problems.append(f"{where}: duplicate id '{entry.id}' (first defined at {self.ids[entry.id]})")
            return
        self.ids[entry.id] = where
        for sig, place in zip(entry.signatures, sig_places, strict=True):
            seen = self.signatures.get(sig.compact)
            if seen is None:
                self.signatures[sig.compact] = (entry.id, place)
            elif seen[0] == entry.id:
                self.problems.append(f"{place}: signature listed twice under '{entry.id}' (also at {seen[1]})")
            else:
                self.problems.append(
                    f"{place}: signature listed under two entries, '{seen[0]}' ({seen[1]}) and '{entry.id}'"
                )
        (self.causes if entry.kind == "cause" else self.known).append(entry)

    def check_whole(self, root: Path) -> None:
        if self.problems:
            # A cause whose file is broken would also show up as "missing": say each problem once.
            return
        if not self.causes:
            self.problems.append(f"{root}: no cause (a file with kind: cause, such as network.yaml)")
        for kind in REQUIRED_KINDS:
            if kind not in self.kinds:
                self.problems.append(f"{root}: no file with kind: {kind} (the shipped one is {_KIND_FILES[kind]})")
        self.check_numbers(root)
        ids = {c.id for c in self.causes}
        for c in self.causes:
            for sig in c.signatures:
                if sig.also is not None and (sig.also not in ids or sig.also == c.id):
                    place = self.signatures[sig.compact][1]
                    self.problems.append(f"{place}: 'also' must name another cause, got '{sig.also}'")
        for key in sorted(_required_strings(root)):
            if key not in self.strings:
                self.problems.append(f"{root}: the UI string '{key}' is missing (add it to a kind: strings file)")
        if self.triage is not None:
            self.check_triage(self.triage)

    def check_numbers(self, root: Path) -> None:
        """The causes are numbered 1 to their count, once each: the numbers are how /fix and the buttons name them."""
        count = len(self.causes)
        if sorted(c.number or 0 for c in self.causes) != list(range(1, count + 1)):
            got = ", ".join(f"{c.id} {c.number}" for c in sorted(self.causes, key=lambda c: c.number or 0))
            self.problems.append(f"{root}: the {count} causes must be numbered 1-{count} once each, got {got}")

    def check_triage(self, triage: Triage) -> None:
        """Every answer leads somewhere that exists, and no path asks more than TRIAGE_DEPTH questions."""
        places = self.triage_places
        causes = {c.id: c for c in self.causes}
        if triage.start not in triage.questions:
            self.problems.append(f"{places['']}: triage start '{triage.start}' is not a question")
            return
        for q in triage.questions.values():
            where = places[q.id]
            for option in q.options:
                if option.next is not None and option.next not in triage.questions:
                    self.problems.append(f"{where}: triage question '{q.id}' leads to unknown question '{option.next}'")
                cause = causes.get(option.cause or "")
                if option.cause is not None and cause is None:
                    self.problems.append(f"{where}: triage question '{q.id}' names unknown cause '{option.cause}'")
                elif option.variant is not None and (cause is None or cause.variant(option.variant) is None):
                    self.problems.append(
                        f"{where}: triage question '{q.id}' names unknown kind '{option.variant}' of '{option.cause}'"
                    )

        def depth(question: str, seen: tuple[str, ...]) -> int:
            if question in seen or question not in triage.questions:
                return TRIAGE_DEPTH + 1
            nexts = [o.next for o in triage.questions[question].options if o.next is not None]
            return 1 + max((depth(n, (*seen, question)) for n in nexts), default=0)

        if not self.problems and depth(triage.start, ()) > TRIAGE_DEPTH:
            self.problems.append(
                f"{places['']}: triage asks more than {TRIAGE_DEPTH} questions on some path (or loops)"
            )


class _FileReader:
    """Validates one YAML file node by node, so every problem can name its line."""

    def __init__(self, path: Path, acc: _Accumulator) -> None:
        self.path = path
        self.acc = acc
        self.name = str(path)
        # Each language code, with where it was given: one code for two languages would make the choice arbitrary.
        self.codes: dict[str, str] = {}

    def at(self, node: yaml.Node) -> str:
        return f"{self.name}:{node.start_mark.line + 1}"

    def problem(self, node: yaml.Node, message: str) -> None:
        self.acc.problems.append(f"{self.at(node)}: {message}")

    def parse(self) -> tuple[yaml.MappingNode, dict[str, tuple[yaml.Node, yaml.Node]], str] | None:
        """The file's root, its fields and its kind, or None (with the problem noted) if it has none of them."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.acc.problems.append(f"{self.name}: cannot read: {exc}")
            return None
        try:
            root = yaml.compose(text, Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.acc.problems.append(f"{self.name}{line}: invalid YAML: {reason}")
            return None
        if root is None:
            self.acc.problems.append(f"{self.name}:1: the file is empty")
            return None
        fields = self.mapping(root, "the file")
        if fields is None:
            return None
        kind_node = fields.get("kind")
        if kind_node is None:
            self.problem(root, f"missing 'kind' (one of: {', '.join(self.readers())})")
            return None
        kind = str(self.scalar(kind_node[1], "kind"))
        if kind not in self.readers():
            self.problem(kind_node[1], f"unknown kind '{kind}' (one of: {', '.join(self.readers())})")
            return None
        return root, fields, kind  # type: ignore[return-value]

    def readers(self) -> dict[str, Callable[[yaml.MappingNode, dict[str, tuple[yaml.Node, yaml.Node]]], None]]:
        return {
            "cause": self.read_cause,
            "known": self.read_known,
            "strings": self.read_strings,
            "matcher": self.read_matcher,
            "peak": self.read_peak,
            "triage": self.read_triage,
            "languages": self.read_languages,
            "talk": self.read_talk,
        }

    def dispatch(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]], kind: str) -> None:
        """Read a parsed file by its kind."""
        self.acc.kinds.add(kind)
        self.readers()[kind](root, fields)

    # --- generic node checks -------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping (key: value)")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.problem(key_node, f"duplicate key '{key}' in {what}")
                continue
            out[key] = (key_node, value_node)
        return out

    def keys(
        self,
        node: yaml.Node,
        fields: dict[str, tuple[yaml.Node, yaml.Node]],
        what: str,
        required: tuple[str, ...],
        optional: tuple[str, ...] = (),
    ) -> bool:
        ok = True
        for key, (key_node, _) in fields.items():
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.problem(key_node, f"unknown key '{key}' in {what} (allowed: {allowed})")
                ok = False
        for key in required:
            if key not in fields:
                self.problem(node, f"{what} is missing '{key}'")
                ok = False
        return ok

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{what} must be a single value")
            return None
        return yaml.SafeLoader("").construct_object(node)  # type: ignore[no-untyped-call]

    def string(self, node: yaml.Node, what: str) -> str | None:
        value = self.scalar(node, what)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problem(node, f"{what} must be text")
            return None
        text = str(value).strip()
        if not text:
            self.problem(node, f"{what} is empty")
            return None
        return text

    def localized(self, node: yaml.Node, what: str) -> Localized | None:
        fields = self.mapping(node, what)
        if fields is None:
            return None
        languages = self.acc.languages
        if not self.keys(node, fields, what, languages):
            return None
        out = {lang: self.string(fields[lang][1], f"{what} ({lang})") for lang in languages}
        if any(text is None for text in out.values()):
            return None
        return {lang: _CJK_FOLD.sub("", text) for lang, text in out.items() if text is not None}

    def string_list(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list")
            return None
        if not node.value:
            self.problem(node, f"{what} is empty")
            return None
        out = []
        for item in node.value:
            text = self.string(item, f"an item of {what}")
            if text is not None:
                out.append((text, item))
        return out

    def weights(self, node: yaml.Node, what: str, key_check: Callable[[Any], Any]) -> dict[Any, float]:
        fields = self.mapping(node, what)
        out: dict[Any, float] = {}
        if fields is None:
            return out
        for key, (key_node, value_node) in fields.items():
            try:
                checked = key_check(self.scalar(key_node, f"a key of {what}"))
            except ValueError as exc:
                self.problem(key_node, f"{what}: {exc}")
                continue
            value = self.scalar(value_node, f"the weight of '{key}'")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                self.problem(value_node, f"{what}: the weight of '{key}' must be a number in (0, 1], got {value!r}")
                continue
            out[checked] = float(value)
        return out

    # --- kinds ---------------------------------------------------------------------------------------

    def read_entry(self, node: yaml.Node, kind: str) -> None:
        what = "a cause" if kind == "cause" else "a known error"
        fields = self.mapping(node, what)
        if fields is None:
            return
        common_optional = ("evidence", "cues", "signatures")
        if kind == "cause":
            required = ("kind", "id", "number", "name", "title", "explanation", "fix", "signatures")
            if not self.keys(node, fields, what, required, ("aliases", "evidence", "cues", "variants", "live")):
                return
        elif not self.keys(node, fields, what, ("id", "title", "answer"), common_optional):
            return
        entry_id = self.string(fields["id"][1], "id")
        if entry_id is None:
            return
        if not _ID.match(entry_id):
            self.problem(fields["id"][1], f"id '{entry_id}' must be lower case letters, digits and _")
            return
        if entry_id in _RESERVED_IDS:
            self.problem(fields["id"][1], f"'{entry_id}' is reserved (it labels corpora); use another id")
            return
        what = f"'{entry_id}'"
        title = self.localized(fields["title"][1], f"{what} title")
        signatures, places = self.read_signatures(fields, entry_id, kind)
        cues = self.read_cues(fields, entry_id)
        error_types, status_codes, exceptions, patterns = self.read_evidence(fields, entry_id)
        if kind == "cause":
            values = self.read_cause_fields(fields, what)
        else:
            answer = self.localized(fields["answer"][1], f"{what} answer")
            values = {"answer": answer} if answer is not None else None
        if values is None:
            return
        if title is None or signatures is None:
            return
        if not signatures and not cues and not (error_types or status_codes or exceptions or patterns):
            self.problem(node, f"{what} has no signatures, cues or evidence, so nothing can ever match it")
            return
        entry = Entry(
            id=entry_id,
            kind=kind,
            title=title,
            signatures=tuple(signatures),
            cues=cues,
            error_types=error_types,
            status_codes=status_codes,
            exceptions=exceptions,
            patterns=patterns,
            **values,
        )
        self.acc.add_entry(entry, self.at(fields["id"][1]), places)

    def read_cause_fields(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], what: str) -> dict[str, Any] | None:
        """A cause's own fields (number, live lines, name, explanation, fix, variants, aliases); None after
        reporting a problem that leaves the cause unusable."""
        values: dict[str, Any] = {}
        number = self.scalar(fields["number"][1], f"{what} number")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            self.problem(fields["number"][1], f"{what} number must be a whole number from 1, got {number!r}")
            return None
        values["number"] = number
        if "live" in fields:
            live = self.read_live(fields["live"][1], what)
            if live is None:
                return None
            values["live"] = live
        values["name"] = self.localized(fields["name"][1], f"{what} name")
        values["explanation"] = self.localized(fields["explanation"][1], f"{what} explanation")
        values["fix"] = self.read_fix(fields["fix"][1], what)
        if "variants" in fields:
            variants = self.read_variants(fields["variants"][1], what)
            if variants is None:
                return None
            values["variants"] = variants
        if "aliases" in fields:
            aliases = self.string_list(fields["aliases"][1], f"{what} aliases")
            values["aliases"] = tuple(clean(a) for a, _ in aliases or ())
        if any(values.get(k) is None for k in ("name", "explanation", "fix")):
            return None
        return values

    def read_live(self, node: yaml.Node, what: str) -> frozenset[str] | None:
        if isinstance(node, yaml.SequenceNode) and not node.value:
            return frozenset()
        items = self.string_list(node, f"{what} live")
        if items is None:
            return None
        for line, item in items:
            if line not in LIVE_LINES:
                self.problem(item, f"{what} live: '{line}' is not a live line (one of: {', '.join(LIVE_LINES)})")
                return None
        return frozenset(line for line, _ in items)

    def read_variants(self, node: yaml.Node, what: str) -> tuple[Variant, ...] | None:
        fields = self.mapping(node, f"{what} variants")
        if fields is None:
            return None
        out: list[Variant] = []
        for variant_id, (key_node, value_node) in fields.items():
            where = f"{what} variant '{variant_id}'"
            if not _ID.match(str(variant_id)):
                self.problem(key_node, f"{where}: a variant id must be lower case letters, digits and _")
                return None
            parts = self.mapping(value_node, where)
            if parts is None or not self.keys(value_node, parts, where, ("title", "words", "fix")):
                return None
            title = self.localized(parts["title"][1], f"{where} title")
            words = self.string_list(parts["words"][1], f"{where} words")
            fix = self.read_fix(parts["fix"][1], where)
            if title is None or words is None or fix is None:
                return None
            out.append(Variant(str(variant_id), title, tuple(clean(w) for w, _ in words), fix))
        return tuple(out)

    def read_fix(self, node: yaml.Node, what: str) -> dict[str, tuple[str, ...]] | None:
        fields = self.mapping(node, f"{what} fix")
        if fields is None or not self.keys(node, fields, f"{what} fix", self.acc.languages):
            return None
        out: dict[str, tuple[str, ...]] = {}
        for lang in self.acc.languages:
            steps = self.string_list(fields[lang][1], f"{what} fix ({lang})")
            if steps is None:
                return None
            out[lang] = tuple(s for s, _ in steps)
        return out

    def read_signatures(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], entry_id: str, kind: str
    ) -> tuple[list[Signature] | None, list[str]]:
        if "signatures" not in fields:
            return [], []
        node = fields["signatures"][1]
        what = f"'{entry_id}' signatures"
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list")
            return None, []
        out: list[Signature] = []
        places: list[str] = []
        for item in node.value:
            also = None
            text_node = item
            if isinstance(item, yaml.MappingNode):
                sub = self.mapping(item, "a signature")
                if sub is None or not self.keys(item, sub, "a signature", ("text",), ("also",)):
                    continue
                text_node = sub["text"][1]
                if "also" in sub:
                    also = self.string(sub["also"][1], "a signature's 'also'")
                    # Whether it names another cause is checked once every cause is read.
                    if also is not None and kind != "cause":
                        self.problem(sub["also"][1], f"'also' must name another cause, got '{also}'")
                        continue
            text = self.string(text_node, f"a signature of '{entry_id}'")
            if text is None:
                continue
            packed = compact(clean(text))
            if weight(packed) < 6:
                self.problem(text_node, f"signature '{text}' is too short to match safely (6+ letters or 3+ hanzi)")
                continue
            out.append(Signature(text=text, compact=packed, entry=entry_id, also=also))
            places.append(self.at(text_node))
        return out, places

    def read_cues(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], entry_id: str) -> dict[str, float]:
        if "cues" not in fields:
            return {}

        def check(key: Any) -> str:
            text = clean(str(key)) if key is not None else ""
            if len(compact(text.rstrip("*"))) < 2:
                raise ValueError(f"cue '{key}' is too short")
            return text

        return self.weights(fields["cues"][1], f"'{entry_id}' cues", check)

    def read_evidence(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], entry_id: str
    ) -> tuple[dict[str, float], dict[int, float], dict[str, float], dict[str, float]]:
        if "evidence" not in fields:
            return {}, {}, {}, {}
        node = fields["evidence"][1]
        what = f"'{entry_id}' evidence"
        sub = self.mapping(node, what)
        allowed = ("error_types", "status_codes", "exceptions", "patterns")
        if sub is None or not self.keys(node, sub, what, (), allowed):
            return {}, {}, {}, {}

        def token(key: Any) -> str:
            if not isinstance(key, str) or not _TOKEN.match(key):
                raise ValueError(f"'{key}' must be a lower-case name like overloaded_error")
            return key

        def status(key: Any) -> int:
            if not isinstance(key, int) or not 100 <= key <= 599:
                raise ValueError(f"'{key}' must be an HTTP status code (100-599)")
            return key

        def part(key: str, check: Callable[[Any], Any]) -> dict[Any, float]:
            return self.weights(sub[key][1], f"{what} {key}", check) if key in sub else {}

        def pattern(key: Any) -> str:
            # Patterns run on the compact text: lower-case letters, digits and hanzi only, no spaces.
            try:
                re.compile(str(key))
            except re.error as exc:
                raise ValueError(f"'{key}' is not a valid regular expression: {exc}") from None
            return str(key)

        return (
            part("error_types", token),
            part("status_codes", status),
            part("exceptions", token),
            part("patterns", pattern),
        )

    def read_cause(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        self.read_entry(root, "cause")

    def read_known(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        if not self.keys(root, fields, "a known-errors file", ("kind", "entries")):
            return
        node = fields["entries"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, "'entries' must be a non-empty list")
            return
        for item in node.value:
            self.read_entry(item, "known")

    def read_triage(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        if not self.keys(root, fields, "a triage file", ("kind", "start", "questions"), ("timeout_minutes",)):
            return
        start = self.string(fields["start"][1], "start")
        timeout = self.scalar(fields["timeout_minutes"][1], "timeout_minutes") if "timeout_minutes" in fields else 15
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            self.problem(fields["timeout_minutes"][1], f"timeout_minutes must be a whole number >= 1, got {timeout!r}")
            return
        questions: dict[str, TriageQuestion] = {}
        for qid, (key_node, node) in (self.mapping(fields["questions"][1], "'questions'") or {}).items():
            what = f"triage question '{qid}'"
            parts = self.mapping(node, what)
            if parts is None or not self.keys(node, parts, what, ("text", "options")):
                return
            text = self.localized(parts["text"][1], f"{what} text")
            options = [self.read_triage_option(item, what) for item in self.items(parts["options"][1], what)]
            if text is None or not options or None in options:
                if not options:
                    self.problem(parts["options"][1], f"{what} needs at least one option")
                return
            questions[str(qid)] = TriageQuestion(str(qid), text, tuple(o for o in options if o is not None))
            self.acc.triage_places[str(qid)] = self.at(key_node)
        if start is None:
            return
        self.acc.triage = Triage(start, questions, timeout)
        self.acc.triage_places[""] = self.at(fields["start"][1])

    def items(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} options must be a list")
            return []
        return list(node.value)

    def read_triage_option(self, node: yaml.Node, what: str) -> TriageOption | None:
        parts = self.mapping(node, f"an option of {what}")
        if parts is None or not self.keys(node, parts, f"an option of {what}", ("label",), ("next", "cause", "kind")):
            return None
        label = self.localized(parts["label"][1], f"an option label of {what}")
        values = {k: self.string(parts[k][1], k) for k in ("next", "cause", "kind") if k in parts}
        if "next" in values and ("cause" in values or "kind" in values):
            self.problem(node, f"an option of {what} leads either to another question or to a cause, not both")
            return None
        if "kind" in values and "cause" not in values:
            self.problem(node, f"an option of {what} names a kind without its cause")
            return None
        if label is None:
            return None
        return TriageOption(label, values.get("next"), values.get("cause"), values.get("kind"))

    def read_languages(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        if not self.keys(root, fields, "the languages file", ("kind", "default", "languages")):
            return
        if self.acc.language_table:
            self.problem(root, "a second languages file: only one kind: languages file is allowed")
            return
        table: list[Language] = []
        variants: list[Language] = []
        for code, (key_node, node) in (self.mapping(fields["languages"][1], "'languages'") or {}).items():
            language = self.read_language(key_node, node, code, None)
            if language is None:
                return
            table.append(language)
            variants_node = _field(node, "variants")
            offered = self.mapping(variants_node, f"variants of '{code}'") if variants_node is not None else {}
            for variant_code, (v_key, v_node) in (offered or {}).items():
                variant = self.read_language(v_key, v_node, variant_code, language)
                if variant is None:
                    return
                variants.append(variant)
        if not table:
            self.problem(fields["languages"][1], "'languages' names no language")
            return
        default = self.string(fields["default"][1], "default")
        if default not in {lang.code for lang in table}:
            self.problem(fields["default"][1], f"the default language '{default}' is not one of 'languages'")
            return
        self.acc.language_table = (*table, *variants)
        self.acc.default_language = str(default)

    def read_language(self, key_node: yaml.Node, node: yaml.Node, code: str, base: Language | None) -> Language | None:
        """One language (a variant when `base` is given): its name, its default time zone and its other codes."""
        what = f"language '{code}'" if base is None else f"variant '{code}' of '{base.code}'"
        if not _LANG_CODE.match(code):
            self.problem(key_node, f"{what}: a language code is lower case, like en, zh or zh-hant")
            return None
        if base is not None and SCRIPT_CONVERSIONS.get(code) != base.code:
            known = ", ".join(f"{v} (of {b})" for v, b in SCRIPT_CONVERSIONS.items())
            self.problem(key_node, f"{what}: no conversion makes it; the code converts to: {known}")
            return None
        parts = self.mapping(node, what)
        optional = ("also", "time_zone") + (("variants",) if base is None else ())
        if parts is None or not self.keys(node, parts, what, ("name",) if base else ("name", "time_zone"), optional):
            return None
        name = self.string(parts["name"][1], f"{what} name")
        zone = self.string(parts["time_zone"][1], f"{what} time_zone") if "time_zone" in parts else None
        also = self.string_list(parts["also"][1], f"{what} also") if "also" in parts else []
        if name is None or also is None or (zone is None and base is None):
            return None
        try:
            zone = resolve_tz(zone).key if zone is not None else base.time_zone  # type: ignore[union-attr]
        except ValueError as exc:
            self.problem(parts["time_zone"][1], f"{what} time_zone: {exc}")
            return None
        for other, item in ((code, key_node), *also):
            if not _LANG_CODE.match(other.lower()):
                self.problem(item, f"{what}: '{other}' is not a language code")
                return None
            if other.lower() in self.codes:
                self.problem(item, f"{what}: the code '{other}' is given twice (also at {self.codes[other.lower()]})")
                return None
            self.codes[other.lower()] = self.at(item)
        return Language(code, name, code if base is None else base.code, zone, tuple(a.lower() for a, _ in also))

    def read_strings(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        if not self.keys(root, fields, "a strings file", ("kind", "strings"), ("cause_buttons_per_row",)):
            return
        if "cause_buttons_per_row" in fields:
            node = fields["cause_buttons_per_row"][1]
            count = self.scalar(node, "cause_buttons_per_row")
            if self.acc.cause_buttons_per_row is not None:
                self.problem(node, f"cause_buttons_per_row is set twice (also at {self.acc.layout_place})")
            elif isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BUTTONS_PER_ROW:
                self.problem(
                    node, f"cause_buttons_per_row must be a whole number 1-{MAX_BUTTONS_PER_ROW}, got {count!r}"
                )
            else:
                self.acc.cause_buttons_per_row = count
                self.acc.layout_place = self.at(node)
        sub = self.mapping(fields["strings"][1], "'strings'")
        for key, (key_node, value_node) in (sub or {}).items():
            if key in self.acc.string_places:
                self.problem(key_node, f"string '{key}' is defined twice (also at {self.acc.string_places[key]})")
                continue
            value = self.localized(value_node, f"string '{key}'")
            if value is None:
                continue
            names = {lang: set(_PLACEHOLDER.findall(v)) for lang, v in value.items()}
            first = self.acc.languages[0]
            differ = [lang for lang in names if names[lang] != names[first]]
            if differ:
                self.problem(value_node, f"string '{key}': {first} and {differ[0]} use different {{placeholders}}")
                continue
            self.acc.string_places[key] = self.at(key_node)
            self.acc.strings[key] = value

    def numbers(self, node: yaml.Node, what: str, required: tuple[str, ...]) -> dict[str, float] | None:
        sub = self.mapping(node, what)
        if sub is None or not self.keys(node, sub, what, required):
            return None
        values: dict[str, float] = {}
        for key, (_, value_node) in sub.items():
            value = self.scalar(value_node, f"{what} {key}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                self.problem(value_node, f"{what} {key} must be a number in (0, 1], got {value!r}")
                return None
            values[key] = float(value)
        return values

    def read_matcher(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        optional = ("context_factors", "terse_words", *VOCABULARIES)
        if not self.keys(root, fields, "the matcher file", ("kind", "thresholds", "calibration"), optional):
            return
        if self.acc.thresholds is not None:
            self.problem(root, "a second matcher file: only one kind: matcher file is allowed")
            return
        node = fields["thresholds"][1]
        values = self.numbers(node, "thresholds", ("asked", "strict", "runner_up_ratio"))
        if values is None:
            return
        if values["strict"] < values["asked"]:
            self.problem(node, "thresholds: strict must be at least as high as asked")
            return
        self.acc.thresholds = Thresholds(**values)
        self.acc.calibration = self.read_calibration(fields["calibration"][1])
        if "context_factors" in fields:
            names = tuple(ContextFactors.__dataclass_fields__)
            factors = self.numbers(fields["context_factors"][1], "context_factors", names)
            if factors is not None:
                self.acc.context_factors = ContextFactors(**factors)
        if "terse_words" in fields:
            count = self.scalar(fields["terse_words"][1], "terse_words")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 50:
                self.problem(fields["terse_words"][1], f"terse_words must be a whole number 0-50, got {count!r}")
            else:
                self.acc.terse_words = count
        for name in VOCABULARIES:
            if name in fields:
                words = self.string_list(fields[name][1], name) or []
                for w, item in words:
                    dropped = _UNMATCHED.findall(clean(w))
                    if dropped:
                        # Words are letters, digits and hanzi joined by ' . / - _: "c++" would be the word "c".
                        self.problem(item, f"{name}: '{w}' has {''.join(dropped)!r}, which matching ignores")
                self.acc.vocabularies[name] = [clean(w) for w, _ in words]

    def read_calibration(self, node: yaml.Node) -> Calibration | None:
        sub = self.mapping(node, "calibration")
        if sub is None or not self.keys(node, sub, "calibration", tuple(_CALIBRATION_KINDS)):
            return None
        values: dict[str, float | int] = {}
        for key, kind in _CALIBRATION_KINDS.items():
            value_node = sub[key][1]
            value = self.scalar(value_node, f"calibration {key}")
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if kind == "count":
                ok, wanted = number and isinstance(value, int) and value >= 1, "a whole number >= 1"
            elif kind == "ratio":
                ok, wanted = number and 0 < value <= 100, "a fuzzy-match ratio in (0, 100]"
            elif kind == "weight":
                ok, wanted = number and 0 < value <= 1, "a weight in (0, 1]"
            else:
                ok, wanted = number and value > 0, "an amount of letters > 0"
            if not ok:
                self.problem(value_node, f"calibration {key} must be {wanted}, got {value!r}")
                return None
            values[key] = value if kind == "count" else float(value)
        return Calibration(**values)  # type: ignore[arg-type]

    def read_talk(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        if not self.keys(root, fields, "the talk model", ("kind", "gate", "bias", "weights"), ("source",)):
            return
        if self.acc.talk is not None:
            self.problem(root, "a second talk model: only one kind: talk file is allowed")
            return
        gate = self.scalar(fields["gate"][1], "gate")
        if isinstance(gate, bool) or not isinstance(gate, int | float) or not 0 < gate <= 1:
            self.problem(fields["gate"][1], f"gate must be a probability in (0, 1], got {gate!r}")
            return
        bias = self.scalar(fields["bias"][1], "bias")
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not math.isfinite(bias):
            self.problem(fields["bias"][1], f"bias must be a number, got {bias!r}")
            return
        weights = self.talk_weights(fields["weights"][1])
        if weights is None:
            return
        source = str(fields["source"][1].value) if "source" in fields else ""
        self.acc.talk = TalkModel(bias=float(bias), weights=weights, gate=float(gate), source=source)

    def talk_weights(self, node: yaml.Node) -> dict[str, float] | None:
        """The weights block: a feature and its weight on each line."""
        if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str):
            self.problem(node, "weights must be a block of lines, each a feature and its weight")
            return None
        weights: dict[str, float] = {}
        # A literal block's first line is the one after its `|`.
        first = node.start_mark.line + 2
        for i, line in enumerate(node.value.splitlines()):
            feature, _, number = line.strip().rpartition(" ")
            try:
                weight = float(number)
            except ValueError:
                weight = math.nan
            if not feature or not math.isfinite(weight):
                self.acc.problems.append(f"{self.name}:{first + i}: a weight line must be a feature and a number")
                return None
            weights[feature] = weight
        return weights

    def read_peak(self, root: yaml.MappingNode, fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        data = yaml.SafeLoader("").construct_document(root)  # type: ignore[no-untyped-call]
        try:
            from bot.core.peak import PeakWindow

            PeakWindow.from_mapping({k: v for k, v in data.items() if k not in ("kind", "source")})
        except ImportError:
            pass
        except (ValueError, TypeError, KeyError) as exc:
            self.problem(root, f"peak window: {exc}")
            return
        self.acc.peak = data


def _field(node: yaml.Node, key: str) -> yaml.Node | None:
    """The value of `key` in a mapping node (already checked), or None."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if str(k.value) == key), None)


_KIND_FILES = {
    "languages": "languages.yaml",
    "known": "known.yaml",
    "strings": "ui.yaml",
    "matcher": "matcher.yaml",
    "peak": "peak.yaml",
}


def _required_strings(root: Path) -> set[str]:
    """Every string the shipped knowledge base defines: the code uses them all, so a replacement needs them too."""
    shipped = shipped_knowledge_dir()
    if not shipped.is_dir() or root.resolve() == shipped:
        return {"no_match", "not_one_of_four", "fix_heading", "also_possible", "empty_input"}
    keys: set[str] = set()
    for path in shipped.glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("kind") == "strings":
            keys.update(data.get("strings") or {})
    return keys


def iter_entries(kb: KnowledgeBase) -> Iterator[Entry]:
    """Causes first, then known non-causes."""
    yield from kb.causes
    yield from kb.known
