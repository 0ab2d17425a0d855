#!/usr/bin/env bash
# One command from a fresh clone to the test suite: install, then pytest.
#   bash scripts/test.sh                 # the full suite, two test processes (pytest-xdist)
#   bash scripts/test.sh -m "not slow"   # any pytest arguments instead of the defaults
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
. .venv/bin/activate
if [ "$#" -eq 0 ]; then
    set -- -q -n 2
fi
exec python -m pytest "$@"
