"""`claude-doctor` for the two-replica test, with the replicas' clocks shortened through their settings. The status
poller's lease (STATUS_LEASE_SECONDS), the status page's poll interval (STATUS_POLL_SECONDS, which the page's cache
follows), and how long another replica's claim on an unfinished update must go unrenewed before it is taken over
(INBOX_STALE_SECONDS, looked at every INBOX_SWEEP_SECONDS) are a minute or so in production; a test that waits for a
takeover would wait that long. The test sets them in the environment, the way an operator would; this module only
checks that they were set, so that a replica never runs the test with the production minutes. Run as
`python -m tests.replica_main run --webhook`; everything else is the real bot."""

from __future__ import annotations

import os
import sys

from bot.cli import main

SHORTENED = ("STATUS_POLL_SECONDS", "STATUS_LEASE_SECONDS", "INBOX_STALE_SECONDS", "INBOX_SWEEP_SECONDS")

if __name__ == "__main__":
    missing = [name for name in SHORTENED if name not in os.environ]
    if missing:
        sys.exit(f"tests.replica_main: set {', '.join(missing)} (the test's shortened timings)")
    sys.exit(main())
