"""A fake Atlassian Statuspage on 127.0.0.1 serving /api/v2/summary.json in switchable states, for tests."""

from __future__ import annotations

import copy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

PAGE = {
    "id": "tymt9n04zgry",
    "name": "Claude",
    "url": "https://status.claude.com",
    "time_zone": "Etc/UTC",
    "updated_at": "2026-03-10T14:20:05.123Z",
}

# The ids the bodies below refer to, so tests can build expected values from them.
MINOR_INCIDENT_ID = "7xk2m9p4q1rs"
MAJOR_INCIDENT_ID = "3hd8w5n0zt6b"
MAINTENANCE_ID = "q0v4c7j2l9fy"
UPCOMING_MAINTENANCE_ID = "b5r1g8s3k6xe"

MAJOR_UPDATE_BODY = "The issue has been identified and a fix is being implemented.\n\nclaude.ai may not load."
# The newest update of the minor incident in "minor" and, one update later, in "minor_update".
MINOR_UPDATE_ID = "u2"
MINOR_NEXT_UPDATE_ID = "u5"
MINOR_NEXT_UPDATE_BODY = "A fix has been implemented and we are monitoring the results."

_GROUP_ID = "0w4mq8zt3yh1"


def _component(
    cid: str, name: str, position: int, status: str = "operational", *, group_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "name": name,
        "status": status,
        "created_at": "2023-07-11T17:43:45.912Z",
        "updated_at": "2026-03-10T14:20:05.101Z",
        "position": position,
        "description": None,
        "showcase": True,
        "start_date": "2023-07-11",
        "group_id": group_id,
        "page_id": PAGE["id"],
        "group": False,
        "only_show_if_degraded": False,
    }


def _components(**statuses: str) -> list[dict[str, Any]]:
    """The page's components; keyword arguments (by id) override a component's status."""
    items = [
        _component("rwppv331jlwc", "claude.ai", 1),
        # A component group: the container entry repeats its children, which carry group_id.
        {
            **_component(_GROUP_ID, "Developer platform", 2),
            "group": True,
            "components": ["yyzkbfz2thpt", "k8w3r06qmzrp"],
        },
        _component("yyzkbfz2thpt", "platform.claude.com", 3, group_id=_GROUP_ID),
        _component("k8w3r06qmzrp", "Claude API (api.anthropic.com)", 4, group_id=_GROUP_ID),
        _component("nyzrw9m3qmqb", "Claude Code", 5),
        {**_component("0qbwn08sd68x", "Claude for Government", 6), "only_show_if_degraded": True},
    ]
    for item in items:
        if item["id"] in statuses:
            item["status"] = statuses[item["id"]]
    # A group shows its worst child, as Statuspage does.
    children = [i for i in items if i["group_id"] == _GROUP_ID]
    order = ["operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"]
    items[1]["status"] = max((c["status"] for c in children), key=order.index)
    return items


def _update(
    uid: str, incident_id: str, status: str, body: str, at: str, affected: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "id": uid,
        "status": status,
        "body": body,
        "incident_id": incident_id,
        "created_at": at,
        "updated_at": at,
        "display_at": at,
        "affected_components": affected,
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def _affected(cid: str, name: str, new_status: str) -> dict[str, str]:
    return {"code": cid, "name": name, "old_status": "operational", "new_status": new_status}


def _incident(
    iid: str, name: str, status: str, impact: str, created: str, updated: str, updates: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": iid,
        "name": name,
        "status": status,
        "created_at": created,
        "updated_at": updated,
        "monitoring_at": None,
        "resolved_at": None,
        "impact": impact,
        "shortlink": f"https://stspg.io/{iid[:6]}",
        "started_at": created,
        "page_id": PAGE["id"],
        "incident_updates": updates,
        "components": [],
    }


def _upcoming_maintenance() -> dict[str, Any]:
    body = "We will be performing scheduled maintenance on the Claude Console."
    return {
        **_incident(
            UPCOMING_MAINTENANCE_ID,
            "Scheduled maintenance for platform.claude.com",
            "scheduled",
            "maintenance",
            "2026-03-09T18:00:00.000Z",
            "2026-03-09T18:00:00.000Z",
            [_update("m1a", UPCOMING_MAINTENANCE_ID, "scheduled", body, "2026-03-09T18:00:00.000Z")],
        ),
        "scheduled_for": "2026-03-14T06:00:00.000Z",
        "scheduled_until": "2026-03-14T08:00:00.000Z",
    }


def summary(state: str) -> dict[str, Any]:
    """The summary.json body of a JSON state: ok, minor, minor_update (one update later), major or maintenance."""
    if state == "ok":
        return {
            "page": copy.deepcopy(PAGE),
            "components": _components(),
            "incidents": [],
            "scheduled_maintenances": [_upcoming_maintenance()],
            "status": {"indicator": "none", "description": "All Systems Operational"},
        }
    if state in ("minor", "minor_update"):
        api = ("k8w3r06qmzrp", "Claude API (api.anthropic.com)")
        updates = [
            _update(
                MINOR_UPDATE_ID,
                MINOR_INCIDENT_ID,
                "investigating",
                "We are continuing to investigate this issue.",
                "2026-03-10T14:20:05.092Z",
            ),
            _update(
                "u1",
                MINOR_INCIDENT_ID,
                "investigating",
                "We are currently investigating elevated errors on requests to Claude Opus.",
                "2026-03-10T14:03:21.601Z",
                [_affected(*api, "degraded_performance")],
            ),
        ]
        status, updated = "investigating", "2026-03-10T14:20:05.101Z"
        if state == "minor_update":
            at = "2026-03-10T14:48:30.240Z"
            updates.insert(
                0, _update(MINOR_NEXT_UPDATE_ID, MINOR_INCIDENT_ID, "monitoring", MINOR_NEXT_UPDATE_BODY, at)
            )
            status, updated = "monitoring", at
        incident = _incident(
            MINOR_INCIDENT_ID,
            "Elevated errors on Claude Opus",
            status,
            "minor",
            "2026-03-10T14:03:21.512Z",
            updated,
            updates,
        )
        return {
            "page": copy.deepcopy(PAGE),
            "components": _components(k8w3r06qmzrp="degraded_performance"),
            "incidents": [incident],
            "scheduled_maintenances": [_upcoming_maintenance()],
            "status": {"indicator": "minor", "description": "Minor Service Outage"},
        }
    if state == "major":
        incident = _incident(
            MAJOR_INCIDENT_ID,
            "claude.ai and Claude Code unavailable for many users",
            "identified",
            "major",
            "2026-03-10T09:12:44.020Z",
            "2026-03-10T09:41:10.870Z",
            [
                _update(
                    "u4",
                    MAJOR_INCIDENT_ID,
                    "identified",
                    MAJOR_UPDATE_BODY,
                    "2026-03-10T09:41:10.861Z",
                    [_affected("rwppv331jlwc", "claude.ai", "major_outage")],
                ),
                _update(
                    "u3",
                    MAJOR_INCIDENT_ID,
                    "investigating",
                    "We are investigating reports of errors on claude.ai and Claude Code.",
                    "2026-03-10T09:12:44.108Z",
                    [
                        _affected("rwppv331jlwc", "claude.ai", "partial_outage"),
                        _affected("nyzrw9m3qmqb", "Claude Code", "partial_outage"),
                    ],
                ),
            ],
        )
        return {
            "page": copy.deepcopy(PAGE),
            "components": _components(rwppv331jlwc="major_outage", nyzrw9m3qmqb="partial_outage"),
            "incidents": [incident],
            "scheduled_maintenances": [],
            "status": {"indicator": "major", "description": "Partial System Outage"},
        }
    if state == "maintenance":
        body = "Scheduled maintenance is currently in progress. We will provide updates as necessary."
        maintenance = {
            **_incident(
                MAINTENANCE_ID,
                "Claude Console database maintenance",
                "in_progress",
                "maintenance",
                "2026-03-07T16:30:00.000Z",
                "2026-03-10T06:00:02.511Z",
                [
                    _update("m3", MAINTENANCE_ID, "in_progress", body, "2026-03-10T06:00:02.502Z"),
                    _update(
                        "m2",
                        MAINTENANCE_ID,
                        "scheduled",
                        "We will be performing database maintenance on the Claude Console.",
                        "2026-03-07T16:30:00.000Z",
                    ),
                ],
            ),
            "scheduled_for": "2026-03-10T06:00:00.000Z",
            "scheduled_until": "2026-03-10T08:00:00.000Z",
        }
        return {
            "page": copy.deepcopy(PAGE),
            "components": _components(yyzkbfz2thpt="under_maintenance"),
            "incidents": [],
            "scheduled_maintenances": [maintenance, _upcoming_maintenance()],
            "status": {"indicator": "maintenance", "description": "Service Under Maintenance"},
        }
    raise ValueError(f"no summary body for state {state!r}")


JSON_STATES = ("ok", "minor", "minor_update", "major", "maintenance")
# http500: an error page; malformed: truncated JSON; html: a 200 that is not JSON (a captive portal, a
# challenge page); shape: valid JSON that is not a summary; stall: accepts the request and never answers.
STATES = (*JSON_STATES, "http500", "malformed", "html", "shape", "stall")


class FakeStatuspage:
    """A threaded HTTP server on a free loopback port; `state` picks the answer, `requests` counts GETs."""

    def __init__(self, state: str = "ok") -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._requests = 0
        self.paths: list[str] = []
        self.state = state
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._serve, name="fake-statuspage", daemon=True)

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; one of {', '.join(STATES)}")
        self._state = state

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def start(self) -> FakeStatuspage:
        self._thread.start()
        return self

    def stop(self) -> None:
        # Let stalled handlers go first: shutdown() waits for the serve loop, which must not be blocked.
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeStatuspage:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        # A short poll keeps stop() quick.
        self._server.serve_forever(poll_interval=0.01)

    def _count(self, path: str) -> str:
        with self._lock:
            self._requests += 1
            self.paths.append(path)
            return self._state


class _Handler(BaseHTTPRequestHandler):
    server_version = "nginx"

    def do_GET(self) -> None:
        fake: FakeStatuspage = self.server.fake  # type: ignore[attr-defined]
        state = fake._count(self.path)
        if self.path.split("?", 1)[0] != "/api/v2/summary.json":
            self._send(404, b'{"error":"Not found"}')
        elif state == "stall":
            # Hold the connection open without a byte of answer until the server stops.
            fake._release.wait()
            self.close_connection = True
        elif state == "http500":
            self._send(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
        elif state == "malformed":
            self._send(200, json.dumps(summary("ok")).encode()[:200])
        elif state == "html":
            self._send(200, b"<!DOCTYPE html><html><title>Just a moment...</title></html>", "text/html")
        elif state == "shape":
            self._send(200, json.dumps({"page": PAGE, "components": "none"}).encode())
        else:
            self._send(200, json.dumps(summary(state)).encode())

    def _send(self, code: int, body: bytes, content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def unused_port_url() -> str:
    """A loopback URL where nothing listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
