#!/usr/bin/env bash
# Tests tf_sampling against each given TensorFlow release: for every version, a
# venv of its own with that TensorFlow, the op built against it (Bazel) in a
# copy of this working tree, and the test suite run there. The checkout, its
# .venv and its op library are never touched, so this can run beside them.
#
# Usage: bash scripts/test_tf_window.sh [-w WORKDIR] [-r REF] [VERSION ...] [-- PYTEST_ARGS ...]
#   VERSION      TensorFlow releases to test; default: the oldest and newest that
#                tf_sampling/version.py (TESTED_TF_VERSIONS) names, which the
#                README states as the tested window.
#   -w WORKDIR   where the venvs and tree copies live, kept between runs so a
#                second run reuses the installs and Bazel's cache
#                (default: ${TMPDIR:-/tmp}/tf_sampling_tf_window).
#   -r REF       test a git commit (e.g. HEAD) instead of the working tree.
#   PYTEST_ARGS  passed to pytest (default: -q), e.g. -- -q -k "not slow".
# TF_SAMPLING_TENSORFLOW picks the distribution (tensorflow, tensorflow-cpu or
# tensorflow[and-cuda]); the default is the one scripts/setup.sh would pick.
#
# Examples:
#   bash scripts/test_tf_window.sh                          # both ends of the window
#   bash scripts/test_tf_window.sh 2.16.2 -- -q -m "not slow"
# Needs Bazel, g++ and python3-venv (scripts/setup.sh installs them) and network
# access to PyPI for the first run of each version. Exits non-zero if any
# version's build or tests fail; prints one summary line per version.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

workdir="${TMPDIR:-/tmp}/tf_sampling_tf_window"
ref=""
versions=()
pytest_args=()
while (($#)); do
  case "$1" in
    -w) workdir="$2"; shift 2 ;;
    -r) ref="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}"; exit 0 ;;
    --) shift; pytest_args=("$@"); break ;;
    *) versions+=("$1"); shift ;;
  esac
done
((${#pytest_args[@]})) || pytest_args=(-q)
if ! ((${#versions[@]})); then
  read -r -a versions <<<"$(python3 scripts/tf_requirement.py tested)"
fi

dist="$(python3 scripts/tf_requirement.py choose)"
mkdir -p "$workdir"
if [[ -n "$ref" ]]; then
  ref="$(git rev-parse --short "$ref^{commit}")"  # One commit for every version.
  echo "[window] testing commit $ref"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# The working tree as git sees it (tracked and untracked, minus ignored files
# such as .venv, build outputs and the op library), or commit $ref, copied afresh.
copy_tree() {
  local dest="$1"
  rm -rf "$dest"
  mkdir -p "$dest"
  if [[ -n "$ref" ]]; then
    git archive "$ref" | tar -xf - -C "$dest"
    return
  fi
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$dest"
}

summary=()
failed=0
for v in "${versions[@]}"; do
  tag="${dist//[^A-Za-z0-9.-]/_}-$v"
  venv="$workdir/venv-$tag"
  src="$workdir/src-$tag"
  log="$workdir/$tag.log"
  echo "[window] TensorFlow $dist==$v: venv $venv, tree $src, log $log"
  start=$SECONDS
  status="ok"
  # One && chain: `set -e` does not apply inside a command whose status is tested.
  {
    { [[ -x "$venv/bin/python" ]] ||
      { python3 -m venv "$venv" &&
        "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel; }; } &&
      "$venv/bin/python" -m pip install -q "$dist==$v" &&
      copy_tree "$src" &&
      # As a user would: TensorFlow first, then the package without isolation
      # (its build compiles the op against this venv's TensorFlow).
      (cd "$src" && "$venv/bin/python" -m pip install -q --no-build-isolation ".[demo,test]") &&
      # What is installed now: nothing may have added a second TensorFlow.
      "$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(tensorflow|tf[-_]nightly)([-_]cpu|[-_]gpu)? '
  } >"$log" 2>&1 || status="setup failed"
  if [[ "$status" == ok ]]; then
    echo "[window] $(grep -iE '^(tensorflow|tf-nightly)' "$log" | tr -s ' ' | paste -sd, -); running pytest"
    set +e
    # The copy's conftest puts the copy first on sys.path: its sources and op.
    (cd "$src" && "$venv/bin/python" -m pytest tests "${pytest_args[@]}") >>"$log" 2>&1
    rc=$?
    set -e
    tail -n 15 "$log"
    [[ "$rc" == 0 ]] || status="tests failed (pytest exit $rc)"
  else
    tail -n 30 "$log"
  fi
  # Each tree copy has its own Bazel server; do not leave it running.
  (cd "$src" 2>/dev/null && bazel shutdown >/dev/null 2>&1) || true
  [[ "$status" == ok ]] || failed=1
  summary+=("$(printf '%-14s %-22s %5d s  %s' "$v" "$dist" $((SECONDS - start)) "$status")")
done

echo "[window] results for ${ref:-the working tree} (pytest ${pytest_args[*]}):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
