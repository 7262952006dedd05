#!/usr/bin/env bash
# Run the test suite (pytest exit 5 = no tests collected is a failure, not a pass).
set -uo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 SCORE_PROGRESS=0
.venv/bin/python -m pytest -q -ra "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit $rc
