#!/usr/bin/env bash
# vllm-router (PyPI, a Rust binary in a wheel) in its own venv, outside the repository, so its
# pinned web stack never meets editjudge's. The overhead benchmark looks for it there by default.
set -euo pipefail
VENV="${VLLM_ROUTER_VENV:-$HOME/.cache/editjudge/vllm-router-venv}"
VERSION="${VLLM_ROUTER_VERSION:-0.1.17}"
if [ ! -x "$VENV/bin/vllm-router" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "vllm-router==$VERSION"
fi
echo "$VENV/bin/vllm-router"
