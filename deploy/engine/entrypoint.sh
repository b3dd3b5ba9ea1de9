#!/bin/sh
# How one vLLM engine of `docker compose up` starts. docker-compose.yml mounts this file read-only
# at /editjudge/entrypoint.sh in every engine container (its `x-engine` block) and runs it there.
# Edit it here and restart the engines (`docker compose restart`) to change how they all start.
#
# Usage: entrypoint.sh INDEX COUNT [ARG...]
#   INDEX  this engine's number, 0 to COUNT-1: it picks the engine's block of CPU cores
#   COUNT  how many engines share this machine
#   ARG    more `vllm serve` arguments for this engine only (after VLLM_EXTRA_ARGS)
#
# Settings come from the container's environment (docker-compose.yml fills it from .env):
#   MODEL, MAX_MODEL_LEN, IMAGES_PER_PROMPT, MAX_PIXELS, GPU_MEMORY_UTILIZATION,
#   STRUCTURED_OUTPUTS_BACKEND: `vllm serve` flags
#   API_SERVER_COUNT  API server processes (they preprocess the images); auto: one per 4 cores
#   VLLM_EXTRA_ARGS   anything else for `vllm serve`, split into words
#   SELF_PIN          1 (default): pin this engine to its block of cores, as `editjudge serve`
#                     does on bare metal; 0: `editjudge compose --pin` already gave it a cpuset
#
# GPU: the service reserves one GPU, and the NVIDIA container runtime shows the container only
# that GPU, numbered 0 whatever its index on the host. vLLM uses the one GPU it sees, so this script
# leaves CUDA_VISIBLE_DEVICES alone: the host index (which bare-metal `editjudge serve` puts in
# CUDA_VISIBLE_DEVICES) does not exist in here.
set -eu
set -f # VLLM_EXTRA_ARGS is split into words below; never expand them as file patterns

# Every engine listens on this port inside its own container; the host publishes it as 8001+INDEX.
PORT=8000

usage() {
	echo "usage: $0 INDEX COUNT [vllm serve args...] (got: $*)" >&2
	exit 64
}

is_count() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
}

# clamp VALUE LOW HIGH
clamp() {
	if [ "$1" -lt "$2" ]; then echo "$2"; elif [ "$1" -gt "$3" ]; then echo "$3"; else echo "$1"; fi
}

if ! { [ $# -ge 2 ] && is_count "$1" && is_count "$2" && [ "$1" -lt "$2" ]; }; then
	usage "$@"
fi
index=$1
count=$2
shift 2
# Set by docker-compose.yml (defaults there, values from .env); stop with a clear message if not.
: "${MODEL:?see .env.example}" "${MAX_MODEL_LEN:?see .env.example}"
: "${IMAGES_PER_PROMPT:?see .env.example}" "${MAX_PIXELS:?see .env.example}"
: "${GPU_MEMORY_UTILIZATION:?see .env.example}" "${STRUCTURED_OUTPUTS_BACKEND:?see .env.example}"
API_SERVER_COUNT=${API_SERVER_COUNT:-auto}

# CPU placement: server/placement.py's plan (what `editjudge serve` does), in sh, for whatever
# machine this runs on. An eighth of the cores (1 to 4) stays with the router; engine INDEX takes
# the INDEX-th of COUNT equal blocks of the rest. Pinning this shell pins `vllm`, which replaces it.
if [ "${SELF_PIN:-1}" = 1 ]; then
	cores=$(nproc)
	router=$(clamp $((cores / 8)) 1 4)
	per=$(((cores - router) / count))
	[ "$per" -ge 1 ] || per=1
	lo=$((index * per))
	taskset -pc "$lo-$((lo + per - 1))" $$ >/dev/null 2>&1 || true
else
	per=$(nproc) # the cpuset compose gave this container
fi

# The API servers do the image preprocessing; the engine core needs about one core of its own.
if [ "$API_SERVER_COUNT" = auto ]; then
	API_SERVER_COUNT=$(clamp $((per / 4)) 1 4)
fi
# Thread pools (OpenMP, MKL, tokenizers) get an equal part of the block per process, so the
# processes do not all spread over every core. Values set in the environment win.
threads=$((per / (API_SERVER_COUNT + 1)))
[ "$threads" -ge 1 ] || threads=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$threads}"
export TOKENIZERS_PARALLELISM=false

# The JSON-valued flags are assembled here from plain settings: .env and compose defaults cannot
# hold braces.
# The health check polls /health and Prometheus scrapes /metrics: their access-log lines would bury
# the engine's own (vLLM >= 0.16; VLLM_EXTRA_ARGS comes later and wins).
# shellcheck disable=SC2086 # VLLM_EXTRA_ARGS is meant to split into several arguments
exec vllm serve "$MODEL" --host 0.0.0.0 --port "$PORT" \
	--max-model-len "$MAX_MODEL_LEN" \
	--limit-mm-per-prompt "{\"image\": $IMAGES_PER_PROMPT, \"video\": 0}" \
	--mm-processor-kwargs "{\"max_pixels\": $MAX_PIXELS}" \
	--gpu-memory-utilization "$GPU_MEMORY_UTILIZATION" \
	--structured-outputs-config "{\"backend\": \"$STRUCTURED_OUTPUTS_BACKEND\"}" \
	--api-server-count "$API_SERVER_COUNT" \
	--enable-prompt-tokens-details \
	--disable-access-log-for-endpoints /health,/metrics \
	${VLLM_EXTRA_ARGS:-} "$@"
