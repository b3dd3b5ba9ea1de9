#!/usr/bin/env bash
# Copy one carried wheel group to /tmp/vllm-wheels (the machine keeps /tmp while it stays warm).
set -euo pipefail
mkdir -p /tmp/vllm-wheels && cp "$1"/* /tmp/vllm-wheels/ && ls /tmp/vllm-wheels | wc -l
