#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: PTB language model,
# sampled softmax vs full softmax. Extra arguments go to the demo, e.g.
# `bash scripts/demo.sh --preset zaremba-small` (Zaremba et al.'s small model; docs/demo.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
export TF_CPP_MIN_LOG_LEVEL=2
# The demo lives in the checkout (demo/), not in the installed package.
exec .venv/bin/python -m demo "$@"
