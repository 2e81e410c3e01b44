#!/usr/bin/env bash
# Sets up a fresh Debian machine for tf_sampling; safe to run again.
#   system packages (Bazel, a C++ compiler, venv) -> .venv -> pip packages
#   -> Bazel build of the op -> install of the package into .venv.
# Usage: scripts/setup.sh [extra ...]   (extras of setup.py, e.g. "demo" "test")
#
# TensorFlow: the build that fits the machine, in the range tf_sampling/version.py
# states (the only place it is written): tensorflow[and-cuda] with an NVIDIA GPU,
# tensorflow-cpu on other Linux x86-64 machines (no CUDA probing at import),
# tensorflow elsewhere. TF_SAMPLING_TENSORFLOW=tensorflow|tensorflow-cpu|
# tensorflow[and-cuda] overrides the choice. If .venv holds another TensorFlow
# distribution, it is uninstalled first: two of them in one site-packages
# overwrite each other's files.
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

# TensorFlow's pre-initialisation logging honours this for most messages.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# tensorflow[and-cuda], tensorflow-cpu or tensorflow (or $TF_SAMPLING_TENSORFLOW).
tf_dist="$("$py" scripts/tf_requirement.py choose)"
# Sets tf_uninstall (other TensorFlow distributions to remove first: two in one
# site-packages overwrite each other's files) and tf_install (the requirement,
# in tf_sampling/version.py's range; the same version when switching builds).
tf_plan="$("$py" scripts/tf_requirement.py plan "$tf_dist")"
eval "$tf_plan"
if [[ -n "$tf_uninstall" ]]; then
  echo "[setup] replacing $tf_uninstall with $tf_install"
  # shellcheck disable=SC2086  # one distribution name per word
  "$py" -m pip uninstall -q -y $tf_uninstall
fi

# TensorFlow first: the op is compiled against the TF in this venv, so the
# package build must see it (hence --no-build-isolation below).
echo "[setup] TensorFlow: $tf_install"
"$py" -m pip install -q --disable-pip-version-check "$tf_install"
echo "[setup] building the op with Bazel and installing tf_sampling${spec}"
"$py" -m pip install -q --disable-pip-version-check --no-build-isolation ".${spec}"
# The check's stderr (TensorFlow's start-up INFO lines) is shown only if it fails.
check_log="$(mktemp)"
trap 'rm -f "$check_log"' EXIT
if ! "$py" - 2>"$check_log" <<'PY'
import tensorflow as tf

import tf_sampling

print(f"[setup] tf_sampling {tf_sampling.__version__} on TensorFlow {tf.__version__}: ready")
PY
then
  cat "$check_log" >&2
  echo "[setup] .venv cannot import tf_sampling (output above)" >&2
  exit 1
fi
