#!/usr/bin/env bash
# The lock: requirements/run.txt (what `jobcast dev` needs) and requirements/test.txt (that plus
# the test, postgres, fast-xlsx and flower extras), every package of the tree pinned with its
# hashes, resolved by pip-compile (pip-tools) for CPython 3.11 on Linux from PyPI alone.
#
#   bash scripts/lock.sh           refresh after editing pyproject.toml (keeps every pin it can)
#   bash scripts/lock.sh --upgrade move every pin to the newest release the bounds allow
#   bash scripts/lock.sh --check   exit 1 when pyproject.toml and the lock disagree (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
mode=${1:-}
upgrade=()
[ "$mode" = --upgrade ] && upgrade=(--upgrade)

compile() {
  # PyPI alone: a machine's own pip configuration (extra indexes, local wheels) stays out of it.
  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" \
    "$PY" -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links "${upgrade[@]}" "$@" pyproject.toml
}

lock() {
  compile --extra service --output-file requirements/run.txt
  compile --extra service --extra test --extra postgres --extra fast-xlsx --extra flower --extra otlp \
    --constraint requirements/run.txt --output-file requirements/test.txt
}

if ! "$PY" -c 'import piptools' 2>/dev/null; then
  echo "scripts/lock.sh needs pip-tools: $PY -m pip install 'pip-tools>=7.4,<8'" >&2
  exit 1
fi

if [ "$mode" = --check ]; then
  saved=$(mktemp -d)
  trap 'cp "$saved"/*.txt requirements/; rm -rf "$saved"' EXIT
  cp requirements/*.txt "$saved"/
  lock
  if ! diff -u "$saved"/run.txt requirements/run.txt || ! diff -u "$saved"/test.txt requirements/test.txt; then
    echo "requirements/*.txt do not match pyproject.toml: run 'bash scripts/lock.sh' and commit" >&2
    exit 1
  fi
  echo "lock matches pyproject.toml"
else
  lock
fi
