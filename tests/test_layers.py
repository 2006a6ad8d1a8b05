"""The package's layers, enforced on the source: core knows nothing of services, Telegram or settings; only the
Telegram adapter imports python-telegram-bot; only the settings loader reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "kbdata" not in p.parts)


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith("bot.core")], ids=_name)
def test_core_imports_only_core(path: Path) -> None:
    banned = ("telegram", "httpx", "bot.services", "bot.telegram", "bot.settings", "bot.conversation", "bot.cli")
    bad = sorted(m for m in imports(path) if _within(m, banned))
    assert not bad, f"{_name(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p).startswith("bot.services")], ids=_name)
def test_services_import_no_front_end(path: Path) -> None:
    banned = ("telegram", "bot.telegram", "bot.conversation", "bot.cli", "bot.console")
    bad = sorted(m for m in imports(path) if _within(m, banned))
    assert not bad, f"{_name(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in MODULES if not _name(p).startswith("bot.telegram")], ids=_name)
def test_only_the_telegram_adapter_imports_telegram(path: Path) -> None:
    bad = sorted(m for m in imports(path) if _within(m, ("telegram",)))
    assert not bad, f"{_name(path)} imports {bad}"


ENV = {"environ", "getenv", "putenv"}


def reads_environment(path: Path) -> bool:
    """Whether a file touches os.environ, os.getenv or python-dotenv."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ENV:
            return True
        names = {alias.name for alias in node.names} if isinstance(node, ast.ImportFrom) else set()
        if isinstance(node, ast.ImportFrom) and (node.module == "dotenv" or (node.module == "os" and names & ENV)):
            return True
    return False


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p) != "bot.settings"], ids=_name)
def test_only_the_settings_loader_reads_the_environment(path: Path) -> None:
    assert not reads_environment(path), f"{_name(path)} reads the environment; take it from Settings instead"


def test_the_settings_loader_does_read_it() -> None:
    assert reads_environment(PACKAGE / "settings.py")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_function_is_over_60_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60  # type: ignore[operator]
    ]
    assert not long, f"{_name(path)}: {', '.join(long)}"


def test_the_telegram_handlers_stay_under_400_lines() -> None:
    assert len((PACKAGE / "telegram" / "handlers.py").read_text(encoding="utf-8").splitlines()) < 400
