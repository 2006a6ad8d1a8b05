"""`claude-doctor` for the two-replica test, with the replicas' clocks shortened. The status poller's lease, the status
page's poll interval and cache, and how old another replica's unfinished update must be before it is taken over are
a minute or more in production; a test that waits for a takeover would wait that long. Run as
`python -m tests.replica_main run --webhook` with REPLICA_TEST_LEASE_SECONDS, REPLICA_TEST_POLL_SECONDS and
REPLICA_TEST_STALE_SECONDS set; everything else is the real bot."""

from __future__ import annotations

import os
import sys

import bot.telegram.app
import bot.telegram.runner
from bot.cli import main
from bot.core.notify import Backoff
from bot.notifier import StatusNotifier


def shorten() -> None:
    """Put the test's seconds where the bot reads them when it builds its parts."""
    lease = float(os.environ["REPLICA_TEST_LEASE_SECONDS"])
    poll = float(os.environ["REPLICA_TEST_POLL_SECONDS"])
    stale = float(os.environ["REPLICA_TEST_STALE_SECONDS"])
    assert StatusNotifier.__init__.__kwdefaults__ is not None
    StatusNotifier.__init__.__kwdefaults__["lease_seconds"] = lease
    Backoff.__init__.__defaults__ = (poll, 900.0)
    # A cached read of the page would hide a change for longer than a poll.
    bot.telegram.app.STATUS_TTL = poll / 2
    bot.telegram.runner.SHARED_STALE_SECONDS = stale
    bot.telegram.runner.SWEEP_EVERY = stale / 4


if __name__ == "__main__":
    shorten()
    sys.exit(main())
