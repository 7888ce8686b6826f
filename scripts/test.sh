#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs lint, types and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e ".[test]"

# The browser tests drive Debian's Chromium (Playwright's own browser download is unreachable).
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium
fi

# The storage tests also run against a real PostgreSQL server, started by the tests on a
# temporary directory and a loopback port (tests/conftest.py postgres_url): Debian's package.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql
fi

.venv/bin/ruff check app tests bench examples
.venv/bin/mypy --strict app
# Compile the training kernel once into numba's cache (~20 s on a fresh clone): otherwise the
# two test processes would both compile it, each stalling its first sessions for a minute.
.venv/bin/python -c "from app.engine import fast; print(f'kernel ready in {fast.warm_up():.1f} s')"

# First the tests that assert values, in two processes; then, alone, the ones that measure time
# or drive Chromium (the `serial` marker, tests/conftest.py). Exit code 5 = nothing selected.
status=0
.venv/bin/pytest -n 2 --dist loadfile -m "not serial and not export" "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"
status=0
.venv/bin/pytest -m "serial and not export" -p no:xdist "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"

# The Keras and PyTorch exports (issue 11) run their scripts with the real libraries: the
# `export` extra (keras, torch 2.13.0: from the local wheel folder when the machine has one).
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
.venv/bin/pip install -q -e ".[export]" "${find_links[@]}"
status=0
.venv/bin/pytest -m export -p no:xdist "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"

# Issue 12: the `ray` tests, deselected above (tests/conftest.py): the session tests' `[ray]`
# cases (tests/api: REST, websocket, owners, quotas with the sessions in Ray shard actors) and
# tests/scale (two real web replicas and a real nginx). The `ray` extra, Debian's nginx, then
# the tests start a local Ray cluster on loopback, the replicas and nginx themselves (~2 min).
.venv/bin/pip install -q -e ".[test,ray]"
if [ ! -x /usr/sbin/nginx ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nginx
fi
status=0
.venv/bin/pytest -m ray -p no:xdist "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"
