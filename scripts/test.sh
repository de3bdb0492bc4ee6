#!/usr/bin/env bash
# The whole test suite: layering, contracts, lint, then every pytest test (e2e and SIP peers
# included). pytest's exit 5 (nothing collected) is a failure, never a silent green.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
set -e
echo "== import layering (import-linter)"; lint-imports --no-cache
echo "== contracts"; voxeron contracts check
echo "== ruff"; ruff check .
set +e
python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "test.sh: pytest collected no tests: failing" >&2; exit 1; fi
exit $rc
