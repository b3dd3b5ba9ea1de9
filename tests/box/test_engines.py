"""The ``vllm serve`` command line ``editjudge serve`` gives each engine."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from editjudge.server.box import defaults
from editjudge.server.box.engines import QUIET_ENDPOINTS, advice_for, engine_argv
from editjudge.server.box.launcher import build_parser
from tests.helpers import VLLM_SHORT_OF_MEMORY


def argv_for(*extra: str) -> list[str]:
    args = build_parser().parse_args(["--gpus", "0", "--model", "m", "--", *extra])
    args.vllm_args = args.vllm_args[1:] if args.vllm_args[:1] == ["--"] else args.vllm_args
    return engine_argv(args, 8001, 1)


def test_engines_do_not_log_health_checks_and_scrapes() -> None:
    argv = argv_for("--max-model-len", "2048")
    at = argv.index("--disable-access-log-for-endpoints")
    assert argv[at + 1] == QUIET_ENDPOINTS == "/health,/metrics"
    # the user's arguments come last, so that a flag given there wins
    assert argv[-2:] == ["--max-model-len", "2048"] and at < len(argv) - 2


@pytest.mark.parametrize(
    "theirs",
    [
        ["--disable-uvicorn-access-log"],  # vLLM before 0.16 has only this one
        ["--disable-access-log-for-endpoints", "/metrics"],
        ["--disable-access-log-for-endpoints=/health"],
    ],
)
def test_an_access_log_flag_after_the_dashes_replaces_ours(theirs: list[str]) -> None:
    argv = argv_for(*theirs)
    assert QUIET_ENDPOINTS not in argv and argv[-len(theirs) :] == theirs


def test_every_engine_gets_the_shared_defaults_unless_the_operator_sets_them() -> None:
    """`editjudge serve --model M -- --load-format dummy` must start on an 80 GB GPU: vLLM's
    own max_model_len for Qwen3-VL (256k) has no room beside the 30B-A3B weights."""
    argv = argv_for("--load-format", "dummy")
    for flag, value in defaults.engine_flags():
        assert argv[argv.index(flag) + 1] == value, flag
    assert defaults.MAX_MODEL_LEN == 16384
    mine = argv_for("--max-model-len", "4096", "--mm-processor-kwargs={}")
    assert mine.count("--max-model-len") == 1 and mine[mine.index("--max-model-len") + 1] == "4096"
    assert "--mm-processor-kwargs" not in mine  # given as --mm-processor-kwargs={...}
    assert mine.count("--limit-mm-per-prompt") == 1  # the default still applies
    # A JSON-valued default given field by field is the operator's too: not sent twice.
    own = argv_for("--structured-outputs-config.backend", "xgrammar")
    assert "--structured-outputs-config" not in own
    assert own[-2:] == ["--structured-outputs-config.backend", "xgrammar"]
    assert defaults.STRUCTURED_OUTPUTS_BACKEND == "guidance"
    # Each engine owns its card: 0.95 of it, not vLLM's 0.9; an operator sharing the card wins.
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.95"
    shared = argv_for("--gpu-memory-utilization=0.9")
    assert "--gpu-memory-utilization" not in shared and shared[-1] == "--gpu-memory-utilization=0.9"


def test_compose_k8s_and_env_example_carry_the_same_defaults() -> None:
    root = Path(__file__).resolve().parents[2]
    expected = {
        "MODEL": defaults.MODEL,
        "MAX_MODEL_LEN": str(defaults.MAX_MODEL_LEN),
        "IMAGES_PER_PROMPT": str(defaults.IMAGES_PER_PROMPT),
        "MAX_PIXELS": str(defaults.MAX_PIXELS),
        "GPU_MEMORY_UTILIZATION": defaults.GPU_MEMORY_UTILIZATION,
        "STRUCTURED_OUTPUTS_BACKEND": defaults.STRUCTURED_OUTPUTS_BACKEND,
    }
    env_example = dict(
        line.split("=", 1)
        for line in (root / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    k8s = yaml.safe_load((root / "deploy/k8s/kustomization.yaml").read_text())
    config = next(g for g in k8s["configMapGenerator"] if g["name"] == "vllm-config")
    k8s_env = dict(item.split("=", 1) for item in config["literals"])
    for name, value in expected.items():
        assert env_example[name] == value, name
        assert k8s_env[name] == value, name
    for text in (
        (root / "deploy/engine/entrypoint.sh").read_text(),
        (root / "deploy/k8s/engines.yaml").read_text(),
    ):
        assert "--mm-processor-cache-type" not in text
        for flag, _ in defaults.engine_flags():
            assert flag in text, flag


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"text_config": {"max_position_embeddings": 4096}}, "4096"),  # a small model
        ({"max_position_embeddings": 8192}, "8192"),
        ({"text_config": {"max_position_embeddings": 262144}}, "16384"),  # Qwen3-VL: capped
        ({}, "16384"),  # the folder does not say
    ],
)
def test_the_default_context_never_exceeds_a_local_models_own(
    tmp_path: Path, config: dict[str, object], expected: str
) -> None:
    """vLLM refuses a --max-model-len beyond the model's context: such an engine would fail
    every start and serve would give up on it."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    args = build_parser().parse_args(["--gpus", "0", "--model", str(tmp_path)])
    argv = engine_argv(args, 8001, 1)
    assert argv[argv.index("--max-model-len") + 1] == expected


def test_serve_help_lists_every_engine_default() -> None:
    """What `--` arguments override is in `editjudge serve --help`, ready to copy."""
    text = build_parser().format_help()
    for flag, value in defaults.engine_flags():
        assert f"    {flag} {shlex.quote(value)}\n" in text, flag
    assert '--structured-outputs-config \'{"backend": "guidance"}\'' in text


def test_memory_advice_only_where_the_launchers_share_was_asked_for() -> None:
    vllm_says = VLLM_SHORT_OF_MEMORY
    advice = advice_for(vllm_says, argv_for("--load-format", "dummy"))
    assert advice and "`-- --gpu-memory-utilization 0.9` (or less)" in advice
    # the operator chose the share: vLLM's own message is the whole story
    assert advice_for(vllm_says, argv_for("--gpu-memory-utilization", "0.97")) is None
    assert advice_for(vllm_says, argv_for("--gpu-memory-utilization=0.97")) is None
    assert advice_for("ValueError: some other failure", argv_for()) is None
