#!/usr/bin/env bash
# Sets up the playground on a fresh machine and serves it on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e .
exec .venv/bin/nn-playground "$@"
