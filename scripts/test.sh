#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine (a virtualenv in .venv), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,ocr]'
# The screenshot tests render Chinese with Debian's Noto CJK fonts; without them only those tests skip.
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-noto-cjk fonts-dejavu-core fontconfig >/dev/null
  else
    echo "note: fonts-noto-cjk is not installed; the screenshot OCR tests will skip" >&2
  fi
fi
# The PostgreSQL store's tests start a throwaway cluster with Debian's server; without it only those tests skip.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "note: postgresql is not installed; the PostgreSQL store tests will skip" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
