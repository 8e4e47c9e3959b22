#!/usr/bin/env bash
# Fuzz the HTTP API with schemathesis, from the OpenAPI document a running stack publishes.
#
# tests/fuzz/test_api_fuzz.py starts a stack of its own (web server, workers, Redis, SQLite),
# signs a user in and runs schemathesis against it within a time budget
# (JOBCAST_FUZZ_SECONDS, 150 by default), failing on any 5xx or answer the document does not
# allow. Reports: test-artifacts/fuzz/ (api.txt, api.xml; logout.txt, logout.xml).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
JOBCAST_FUZZ=1 exec "$PY" -m pytest tests/fuzz -q "$@"
