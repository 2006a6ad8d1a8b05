#!/usr/bin/env bash
# Set up claude-doctor in .venv on a fresh machine and start it: the bot with TELEGRAM_BOT_TOKEN, else the console chat.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/claude-doctor ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi
exec .venv/bin/claude-doctor "$@"
