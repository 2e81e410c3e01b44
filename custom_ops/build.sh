#!/usr/bin/env bash
# Builds the tf_sampling C++ ops with Bazel and copies the shared library into
# tf_sampling/ops/, where the Python package loads it (lazily).
#
#   bash custom_ops/build.sh                 # uses $PYTHON, else .venv, else python3
#   PYTHON=/path/to/python bash custom_ops/build.sh
#
# Safe to re-run: configure rewrites .configure.bazelrc and Bazel rebuilds only
# what changed (everything if the TensorFlow it points at changed).
# setup.py's build_py hook runs this with PYTHON set to the installing Python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHON

if ! command -v bazel >/dev/null 2>&1; then
  echo "[build] bazel not found: install it (Debian: apt-get install bazel-bootstrap)" >&2
  exit 1
fi

bash custom_ops/configure.sh
target=//custom_ops:_tf_sampling_ops.so
echo "[build] bazel build $target"
start=$SECONDS
bazel build "$target"
bin_dir="$(bazel info bazel-bin 2>/dev/null)"
so="$bin_dir/custom_ops/_tf_sampling_ops.so"
if [[ ! -f "$so" ]]; then
  echo "[build] expected $so after the build, found nothing" >&2
  exit 1
fi
# Install by rename so a process that already mapped the old file keeps it.
cp -f "$so" tf_sampling/ops/_tf_sampling_ops.so.tmp
chmod u+w tf_sampling/ops/_tf_sampling_ops.so.tmp
mv -f tf_sampling/ops/_tf_sampling_ops.so.tmp tf_sampling/ops/_tf_sampling_ops.so
echo "[build] tf_sampling/ops/_tf_sampling_ops.so ready ($((SECONDS - start)) s)"
