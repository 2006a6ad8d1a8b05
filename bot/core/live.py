"""Live lines, without Telegram: the status and peak-hour lines under a diagnosis, the /status page, incident
messages and /tz answers, in HTML or plain text, with times in the reader's zone."""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.knowledge import KnowledgeBase, default_knowledge
from bot.core.matcher import Diagnosis
from bot.core.notify import Event, EventKind
from bot.core.peak import PeakWindow, peak_state, resolve_tz
from bot.core.replies import Markup, localize
from bot.core.statuspage import Incident, StatusSummary

log = logging.getLogger(__name__)

# The longest a diagnosis may wait for the status page; past it the answer goes out without the line.
LIVE_WAIT = 2.0
# An incident update is a paragraph or two; a runaway one must not crowd out the rest of a message.
UPDATE_LIMIT = 700
# Names from the status page (incidents, components) are cut to this before they are marked up, so a message is
# never split inside a tag.
NAME_LIMIT = 200
# Most severe first, for the one incident a diagnosis line names.
_SEVERITY = ("critical", "major", "minor", "none", "maintenance")


def wants_status(diagnosis: Diagnosis | None, kb: KnowledgeBase | None = None) -> bool:
    """Whether this diagnosis is decorated with the live status line (so the page is worth asking), by its cause's
    `live` field in `kb` (default: `default_knowledge()`)."""
    return diagnosis is not None and (kb or default_knowledge()).wants_status(diagnosis.cause)


def peak_window(kb: KnowledgeBase) -> PeakWindow | None:
    """The knowledge base's peak-hours window, or None when it has none (a custom knowledge base)."""
    if kb.peak is None:
        return None
    try:
        return PeakWindow.from_mapping(kb.peak)
    except ValueError as exc:  # the loader validated it already; a window that broke since is just left out
        log.warning("peak window ignored: %s", exc)
        return None


def user_zone(name: str | None, lang: str, kb: KnowledgeBase | None = None) -> ZoneInfo:
    """The zone a user chose with /tz, or the one their language assumes in `kb` (default: `default_knowledge()`;
    the shipped languages.yaml says Asia/Shanghai for Chinese, UTC for English)."""
    if name:
        try:
            return resolve_tz(name)
        except ValueError:
            log.info("stored time zone %r no longer resolves; using the default", name)
    return ZoneInfo((kb or default_knowledge()).time_zone(lang))


class Live:
    """Renders the live lines in one markup, from the knowledge base's strings and peak window."""

    def __init__(self, kb: KnowledgeBase, markup: Markup, window: PeakWindow | None = None) -> None:
        self.kb = kb
        self.markup = markup
        self.window = window if window is not None else peak_window(kb)

    def wants_status(self, diagnosis: Diagnosis | None) -> bool:
        """Whether this diagnosis carries the live status line, so the status page is worth asking."""
        return diagnosis is not None and self.kb.wants_status(diagnosis.cause)

    def user_zone(self, name: str | None, lang: str) -> ZoneInfo:
        """The zone a user chose with /tz, or the one their language assumes."""
        return user_zone(name, lang, self.kb)

    # --- building blocks ---------------------------------------------------------------------------

    def _t(self, key: str, lang: str, **values: object) -> str:
        """A string with its values filled in, escaped as a whole (the values may come from the status page)."""
        return self.markup.esc(self.kb.text(key, lang, **values))

    def _word(self, prefix: str, value: str, lang: str) -> str:
        """A page vocabulary word ('partial_outage') in the reader's language, or the word itself if unknown."""
        key = f"{prefix}_{value}"
        return self.kb.text(key, lang) if key in self.kb.strings else value.replace("_", " ")

    def when(self, moment: datetime, now: datetime, tz: ZoneInfo, lang: str) -> str:
        """A time in `tz`, with 'tomorrow', 'yesterday', a weekday or a date when it is not today."""
        local = moment.astimezone(tz)
        days = (local.date() - now.astimezone(tz).date()).days
        clock = f"{local:%H:%M}"
        if days == 0:
            return clock
        if days == 1:
            return self.kb.text("when_tomorrow", lang, time=clock)
        if days == -1:
            return self.kb.text("when_yesterday", lang, time=clock)
        if -7 < days < 7:
            return f"{self.kb.text('weekday_names', lang).split()[local.weekday()]} {clock}"
        return f"{local:%Y-%m-%d} {clock}"

    def link(self, url: str, label: str) -> str:
        """A link to `url`: an anchor in HTML, 'label: url' in plain text."""
        if self.markup is Markup.HTML:
            return f'<a href="{html.escape(url, quote=True)}">{html.escape(label, quote=False)}</a>'
        return f"{label}: {url}"

    # --- under a diagnosis -------------------------------------------------------------------------

    def status_line(self, summary: StatusSummary, now: datetime, tz: ZoneInfo, lang: str) -> str:
        """One line: the most severe open incident and since when, or 'no incident reported'."""
        if not summary.incidents:
            return localize(self._t("live_no_incident", lang), lang)
        worst = min(summary.incidents, key=_severity)
        since = self.when(worst.started_at, now, tz, lang)
        line = self._t("live_incident", lang, name=_clip(worst.name, NAME_LIMIT), since=since, tz=tz.key)
        if len(summary.incidents) > 1:
            line += " " + self._t("live_incident_more", lang, count=len(summary.incidents) - 1)
        return localize(line, lang)

    def peak_line(self, now: datetime, tz: ZoneInfo, lang: str) -> str | None:
        """Whether it is peak time now and when that ends, or when the next peak starts; None without a window."""
        if self.window is None:
            return None
        state = peak_state(now, tz, self.window)
        if state.is_peak:
            text = self._t("peak_now", lang, end=self.when(state.end, now, tz, lang), tz=tz.key)
        else:
            start = self.when(state.start, now, tz, lang)
            text = self._t("peak_not_now", lang, start=start, end=f"{state.end:%H:%M}", tz=tz.key)
        return localize(text, lang)

    def diagnosis_lines(
        self, diagnosis: Diagnosis, summary: StatusSummary | None, now: datetime, tz: ZoneInfo, lang: str
    ) -> tuple[str, ...]:
        """The live lines for a diagnosis, as its cause's `live` field says: the status line (only when the page
        answered) and the peak line. Empty for a cause with neither."""
        lines: list[str] = []
        if self.kb.wants_status(diagnosis.cause) and summary is not None:
            lines.append(self.status_line(summary, now, tz, lang))
        if self.kb.wants_peak(diagnosis.cause):
            peak = self.peak_line(now, tz, lang)
            if peak is not None:
                lines.append(peak)
        return tuple(lines)

    # --- /status -----------------------------------------------------------------------------------

    def _incident_block(self, incident: Incident, now: datetime, tz: ZoneInfo, lang: str) -> list[str]:
        meta = self._t(
            "status_incident_meta",
            lang,
            state=self._word("incident", incident.status, lang),
            impact=self._word("impact", incident.impact, lang),
            since=self.when(incident.started_at, now, tz, lang),
            updated=self.when(incident.updated_at, now, tz, lang),
        )
        lines = [self.markup.bold(_clip(incident.name, NAME_LIMIT)), meta]
        if incident.latest_update:
            lines.append(self.markup.esc(_clip(incident.latest_update, UPDATE_LIMIT)))
        if incident.url:
            lines.append(self.link(incident.url, self.kb.text("status_details", lang)))
        return lines

    def status_page(self, summary: StatusSummary, page_url: str, now: datetime, tz: ZoneInfo, lang: str) -> str:
        """/status: the overall state, the components not operational, open incidents with their latest update
        and link, the peak line, and which zone the times are in."""
        state = self._word("indicator", summary.indicator, lang)
        lines = [self.markup.bold(self.kb.text("status_heading", lang, state=state))]
        degraded = summary.not_operational()
        if degraded:
            lines += ["", self.markup.bold(self.kb.text("status_components_heading", lang))]
            lines += [
                self._t(
                    "status_component_line",
                    lang,
                    name=_clip(c.name, NAME_LIMIT),
                    state=self._word("component", c.status, lang),
                )
                for c in degraded
            ]
        elif summary.components:
            lines.append(self._t("status_all_operational", lang, count=len(summary.components)))
        if summary.incidents:
            lines += ["", self.markup.bold(self.kb.text("status_incidents_heading", lang))]
            for n, incident in enumerate(sorted(summary.incidents, key=_severity)):
                lines += ([""] if n else []) + self._incident_block(incident, now, tz, lang)
        else:
            lines.append(self._t("status_no_incidents", lang))
        peak = self.peak_line(now, tz, lang)
        if peak is not None:
            lines += ["", peak]
        lines += ["", self._t("status_footer", lang, tz=tz.key, page=_host(page_url))]
        return localize("\n".join(lines), lang)

    def status_unavailable(self, reason: str, page_url: str, lang: str) -> str:
        """/status when the page can't be read: the short reason and where to look instead."""
        return localize(self._t("status_unavailable", lang, reason=reason, page=page_url), lang)

    # --- notifications -----------------------------------------------------------------------------

    def event(self, event: Event, now: datetime, tz: ZoneInfo, lang: str) -> str:
        """The message announcing one change to an incident."""
        seen = event.seen
        maintenance = seen.impact == "maintenance"
        if event.kind is EventKind.OPENED:
            key = "notify_maintenance_opened" if maintenance else "notify_opened"
        elif event.kind is EventKind.UPDATED:
            key = "notify_updated"
        else:
            key = "notify_maintenance_resolved" if maintenance else "notify_resolved"
        lines = [self.markup.bold(self.kb.text(key, lang, name=_clip(seen.name, NAME_LIMIT)))]
        if event.incident is not None:
            lines += self._incident_block(event.incident, now, tz, lang)[1:]
        else:
            lines.append(self._t("notify_resolved_meta", lang, since=self.when(seen.started_at, now, tz, lang)))
            if seen.url:
                lines.append(self.link(seen.url, self.kb.text("status_details", lang)))
        lines += ["", self._t("notify_footer", lang, tz=tz.key)]
        return localize("\n".join(lines), lang)

    # --- /tz ---------------------------------------------------------------------------------------

    def tz_answer(self, key: str, now: datetime, tz: ZoneInfo, lang: str) -> str:
        """'tz_show' or 'tz_set': the zone and the time there now."""
        return localize(self._t(key, lang, tz=tz.key, time=f"{now.astimezone(tz):%H:%M}"), lang)

    def tz_unknown(self, name: str, lang: str) -> str:
        """The answer to a zone name that isn't one; the name is cut short and escaped."""
        return localize(self._t("tz_unknown", lang, name=_clip(" ".join(name.split()), 64)), lang)


def _severity(incident: Incident) -> int:
    return _SEVERITY.index(incident.impact) if incident.impact in _SEVERITY else len(_SEVERITY)


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url).rstrip("/")


def _clip(text: str, limit: int) -> str:
    # Keep paragraphs, drop runs of blank lines and trailing spaces; cut long text at a word.
    text = re.sub(r"\n\s*\n+", "\n", "\n".join(line.rstrip() for line in text.strip().splitlines()))
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    return text[: cut if cut > limit // 2 else limit - 1].rstrip() + "…"
