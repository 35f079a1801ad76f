#!/usr/bin/env bash
# System packages some tests use: headless Chromium (tests/live/test_viewer_browser.py), a real
# Redis server (tests/live/test_live.py) and bubblewrap (the grading sandbox,
# tests/grading/test_sandbox.py). Quiet, and a no-op when all are already installed.
# Tests that need them skip with the reason when they are missing.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
if [ ${#need[@]} -eq 0 ]; then
    echo "system packages: chromium, redis-server and bubblewrap already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system packages: apt-get not found; install ${need[*]} by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "system packages: not root and no sudo; install ${need[*]} by hand" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "system packages: installing ${need[*]} ..."
$SUDO apt-get update -qq >/dev/null
# policy-rc.d-less containers: the redis-server package may try to start its service; the
# tests start their own server on a free port, so a failed start here does not matter.
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
echo "system packages: done ($(command -v chromium || echo /usr/bin/chromium), $(command -v redis-server), $(command -v bwrap))"
