#!/usr/bin/env bash
# A virtual environment with jobcast installed from the lock, the same for a newcomer and CI.
#
#   bash scripts/install.sh run [VENV]    what `jobcast dev` needs (requirements/run.txt)
#   bash scripts/install.sh test [VENV]   that plus the test tools (requirements/test.txt)
#
# VENV defaults to .venv. An existing environment is brought to the lock's versions; pass
# JOBCAST_FRESH_VENV=1 to build it anew. jobcast itself goes in editable, without dependencies:
# every one of them comes from the lock, checked against its hashes.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-}
venv=${2:-.venv}
case "$kind" in
  run | test) ;;
  *) echo "usage: bash scripts/install.sh run|test [VENV]" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null; then
  echo "jobcast needs Python 3.11 or newer as python3.11 (or set PYTHON=/path/to/python3)" >&2
  exit 1
fi

[ "${JOBCAST_FRESH_VENV:-}" = 1 ] && rm -rf "$venv"
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --require-hashes -r "requirements/$kind.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
echo "jobcast installed in $venv ($kind)"
