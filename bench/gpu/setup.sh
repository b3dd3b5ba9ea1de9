#!/usr/bin/env bash
# After every kit group is in /tmp/vllm-wheels: install vLLM + the router's extras, build the model.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export VLLM_USE_FLASHINFER_SAMPLER=0
bash "$HERE/install.sh" "$HERE/reqs-runtime.txt"
if [ -d "$ROOT/.whl" ]; then
  python3 -m pip install -q --no-index --no-deps "$ROOT"/.whl/*.whl
fi
python3 -c "import orjson, pydantic_settings, fastapi, uvicorn, aiohttp, yaml; print('router deps ok')"
[ -f /tmp/q7b/config.json ] || python3 "$ROOT/tests/e2e/vllm_cpu/make_tiny_model.py" /tmp/q7b \
  --arch qwen2_5_vl --size 7b >/dev/null
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
nproc
