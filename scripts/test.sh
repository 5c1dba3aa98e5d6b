#!/usr/bin/env bash
# The whole test suite from a fresh checkout: system packages, a venv, services, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k wire).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev,yamnet,postgres,train,bench,coverage]"
# A throwaway PostgreSQL server for the store tests (they also run on SQLite); stopped on exit.
eval "$(scripts/start-postgres.sh)"
trap 'scripts/start-postgres.sh --stop' EXIT
# pytest exits 5 when it collects no tests; that is a failure here, never a pass.
.venv/bin/pytest "$@"
