#!/usr/bin/env bash
# Run the whole suite. Under CI=true nothing may be skipped for a missing component
# (tests fail instead, see tests/conftest.py:require). Exit 5 (no tests) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export ASTRAGO_USER_ENV="${ASTRAGO_USER_ENV:-$(pwd)/.venv}"
mkdir -p test-artifacts
.venv/bin/python -m pytest -ra -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "no tests ran" >&2
  exit 1
fi
exit "$rc"
