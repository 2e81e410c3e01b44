#!/usr/bin/env bash
# Sets up a fresh Debian machine for tf_sampling; safe to run again.
#   system packages (Bazel, a C++ compiler, venv) -> .venv -> pip packages
#   -> Bazel build of the op -> install of the package into .venv.
# Usage: scripts/setup.sh [extra ...]   (extras of setup.py, e.g. "demo" "test")
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v bazel >/dev/null 2>&1 || missing+=(bazel-bootstrap)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "[setup] installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
py=.venv/bin/python
"$py" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel

extras=("$@")
spec=""
if ((${#extras[@]})); then spec="[$(IFS=,; echo "${extras[*]}")]"; fi

# TensorFlow first: the op is compiled against the TF in this venv, so the
# package build must see it (hence --no-build-isolation below).
"$py" -m pip install -q --disable-pip-version-check "tensorflow>=2.16,<2.22" keras numpy absl-py
echo "[setup] building the op with Bazel and installing tf_sampling${spec}"
"$py" -m pip install -q --disable-pip-version-check --no-build-isolation ".${spec}"
"$py" - <<'PY'
import tf_sampling, tensorflow as tf
print(f"[setup] tf_sampling {tf_sampling.__version__} on TensorFlow {tf.__version__}: ready")
PY
