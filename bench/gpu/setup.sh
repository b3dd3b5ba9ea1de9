#!/usr/bin/env bash
# After every kit group is in /tmp/vllm-wheels: install vLLM + the router's extras, build the model.
# Usage: bash setup.sh [7b|30b-a3b]   (dummy-weight Qwen2.5-VL-7B in /tmp/q7b, the default, or
#                                      Qwen3-VL-30B-A3B in /tmp/q30b)
set -euo pipefail
SIZE=${1:-7b}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export VLLM_USE_FLASHINFER_SAMPLER=0
bash "$HERE/install.sh" "$HERE/reqs-runtime.txt"
if [ -d "$ROOT/.whl" ]; then
  python3 -m pip install -q --no-index --no-deps "$ROOT"/.whl/*.whl
fi
python3 -c "import orjson, pydantic_settings, fastapi, uvicorn, aiohttp, yaml, rich; print('router and client deps ok')"
case "$SIZE" in
  7b) [ -f /tmp/q7b/config.json ] || python3 "$ROOT/tests/e2e/vllm_cpu/make_tiny_model.py" /tmp/q7b \
        --arch qwen2_5_vl --size 7b >/dev/null ;;
  30b-a3b) [ -f /tmp/q30b/config.json ] || python3 "$ROOT/tests/e2e/vllm_cpu/make_tiny_model.py" \
        /tmp/q30b --arch qwen3_vl --size 30b-a3b >/dev/null ;;
  *) echo "setup.sh: unknown model size $SIZE (7b or 30b-a3b)" >&2; exit 2 ;;
esac
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
nproc
