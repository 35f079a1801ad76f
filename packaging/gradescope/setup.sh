#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (as root, on Ubuntu).
# It installs Python 3.11+ if the image has none, bubblewrap (the grading sandbox; without it,
# or where the container refuses user namespaces, grading runs unsandboxed and each report says
# so), makes a virtual environment in /autograder/venv, and installs the kit (this zip's
# contents) with its dependencies, with pip.
set -euo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="${AUTOGRADER_SOURCE:-$ROOT/source}"

PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        PYTHON="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update
    apt-get install -y python3.11 python3.11-venv
    PYTHON="$(command -v python3.11)"
fi

if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q bubblewrap || echo "bubblewrap not installed: grading runs unsandboxed"
fi

"$PYTHON" -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --upgrade pip
"$ROOT/venv/bin/python" -m pip install "$SOURCE"
"$ROOT/venv/bin/python" -c 'import fastapi, opentelemetry.sdk.trace, pytest; print("workshop grader installed")'
