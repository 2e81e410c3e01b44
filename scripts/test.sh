#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite plus the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo test
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/ruff check tf_sampling demo tests bench examples scripts setup.py
.venv/bin/ruff format --check tf_sampling demo tests bench examples scripts setup.py
set +e
.venv/bin/python -m pytest tests -q "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit $rc
