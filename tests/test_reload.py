"""The knowledge base reloads without a restart: SIGHUP or /reload (operators only) swaps in an edited copy; a
broken one is refused with its problems and the one in use stays."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bot.cli import main
from bot.conversation import Conversation
from bot.core.knowledge import knowledge_version, load_knowledge
from bot.core.matcher import Matcher
from bot.core.replies import Markup
from bot.core.responder import Responder
from bot.services.memory_store import MemoryStore
from tests.fakebotapi import FakeBotApi
from tests.test_faults import bot_process, running, started, stderr_of, user

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge"
NEW_ERROR = "Zorblax frobnicator overheated (code 7741)"
SIGNATURE = '  - "Zorblax frobnicator overheated"\n'


def add_signature(kb: Path) -> None:
    path = kb / "capacity.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("signatures:\n", "signatures:\n" + SIGNATURE, 1), encoding="utf-8")


def break_yaml(kb: Path) -> None:
    (kb / "service.yaml").write_text("kind: cause\nid: [unclosed\n", encoding="utf-8")


def test_the_version_is_a_content_hash_that_changes_with_an_edit(kb_copy: Path) -> None:
    before = knowledge_version(kb_copy)
    assert before == knowledge_version(kb_copy) and len(before) == 12
    add_signature(kb_copy)
    assert knowledge_version(kb_copy) != before


def test_version_names_the_knowledge_base(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert f"knowledge base {knowledge_version()}" in capsys.readouterr().out


async def test_a_reload_swaps_in_the_edited_knowledge_and_refuses_a_broken_one(kb_copy: Path, tmp_path: Path) -> None:
    doctor = Conversation(Responder(Matcher(load_knowledge(kb_copy)), Markup.PLAIN), MemoryStore())
    assert doctor.responder.diagnosis(NEW_ERROR, "en").diagnosis.cause is None  # type: ignore[union-attr]
    add_signature(kb_copy)
    assert await doctor.reload_knowledge() == []
    assert doctor.responder.diagnosis(NEW_ERROR, "en").diagnosis.cause == "capacity"  # type: ignore[union-attr]
    break_yaml(kb_copy)
    problems = await doctor.reload_knowledge()
    assert problems and all(str(kb_copy / "service.yaml") in p for p in problems)
    assert doctor.responder.diagnosis(NEW_ERROR, "en").diagnosis.cause == "capacity"  # type: ignore[union-attr]


async def ask(api: FakeBotApi, n: int) -> str:
    mark = api.mark()
    api.push_update(api.make.private_message(NEW_ERROR, user=user(api, n)))
    call = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == n, since=mark, timeout=30)
    return call.text


async def test_sighup_makes_the_running_bot_use_the_edited_knowledge(
    fake_bot_api: FakeBotApi, tmp_path: Path, kb_copy: Path
) -> None:
    api = fake_bot_api
    data = tmp_path / "data"
    data.mkdir()
    with bot_process(api, data, KNOWLEDGE_DIR=str(kb_copy)) as proc:
        await started(proc, api.wait_for_idle_poll(timeout=60), data)
        assert "3. " not in await ask(api, 7000)
        add_signature(kb_copy)
        proc.send_signal(signal.SIGHUP)
        # The reload takes a moment: ask (as new users, so no flood limit applies) until the answer changes.
        for n in range(7001, 7400):
            if "3. Capacity" in await ask(api, n):
                break
        else:
            raise AssertionError(f"never reloaded:\n{stderr_of(data)[-2000:]}")
        break_yaml(kb_copy)
        proc.send_signal(signal.SIGHUP)
        for n in range(9000, 9400):
            if "not reloaded" in stderr_of(data):
                break
            await ask(api, n)
        else:
            raise AssertionError("the broken knowledge base was never reported")
        assert "service.yaml" in stderr_of(data)
        assert "3. " in await ask(api, 9500)  # the old, working knowledge stays
        assert proc.poll() is None


async def test_reload_is_for_operators_only(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    api = fake_bot_api
    async with running(api, tmp_path, operator_ids=frozenset({4242})):
        api.push_update(api.make.private_message("/reload", user=user(api, 1111)))
        refused = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == 1111)
        assert "for the bot's operators" in refused.text
        api.push_update(api.make.private_message("/reload", user=user(api, 4242)))
        done = await api.wait_for_call("sendMessage", lambda c: c.ok and c.chat_id == 4242)
        assert "Knowledge base reloaded (version " in done.text
