"""deploy/k8s: renders with kustomize, validates against Kubernetes schemas, offline, and wires up.

Rendering uses ``kubectl kustomize`` (kubectl ships with the project's machine image); schemas
come bundled with the ``kubernetes-validate`` package, strict mode (unknown fields are errors).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from pydantic import ValidationError

from editjudge.server.config import Settings
from tests.shell_stub import container_argv, run_engine, run_engine_command

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
COMPOSE = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
OLDEST_SUPPORTED = "1.28.0"

Doc = dict[str, Any]


def kustomize(path: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl (with its built-in kustomize) is needed to render deploy/k8s")
        pytest.skip("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return kustomize(K8S)


def one(docs: list[Doc], kind: str, name_prefix: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"{kind}/{name_prefix}*: {len(found)} found"
    return found[0]


def workload(docs: list[Doc], name: str) -> tuple[Doc, Doc]:
    """A workload and its only container."""
    kind = "StatefulSet" if name == "vllm" else "Deployment"
    w = one(docs, kind, name)
    (container,) = w["spec"]["template"]["spec"]["containers"]
    return w, container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The container's environment: its ConfigMaps (envFrom) and literal env values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= one(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, latest_version()])
def test_every_resource_validates_against_the_schemas(docs: list[Doc], version: str) -> None:
    kinds = set()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert kinds >= {"StatefulSet", "Deployment", "Service", "Secret", "PodDisruptionBudget"}


def test_engines_have_one_gpu_each_and_health_probes(docs: list[Doc]) -> None:
    sts, vllm = workload(docs, "vllm")
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"cpu", "memory"} <= set(vllm["resources"]["requests"])
    port = {p["name"]: p["containerPort"] for p in vllm["ports"]}["http"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert vllm[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert port == 8000
    assert sts["spec"]["podManagementPolicy"] == "Parallel"


def test_routers_discover_engines_through_the_headless_service(docs: list[Doc]) -> None:
    sts, vllm = workload(docs, "vllm")
    deployment, router = workload(docs, "editjudge-router")
    headless = one(docs, "Service", "vllm-engines")
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert selects(headless["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])
    assert not selects(
        headless["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    env = env_of(docs, router)
    assert env["EDITJUDGE_DISCOVERY"] == "dns"
    assert env["EDITJUDGE_DISCOVERY_DNS_NAME"] == headless["metadata"]["name"]
    assert int(env["EDITJUDGE_DISCOVERY_PORT"]) == vllm["ports"][0]["containerPort"]


def test_router_is_replicated_behind_a_service(docs: list[Doc]) -> None:
    deployment, router = workload(docs, "editjudge-router")
    assert deployment["spec"]["replicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(docs, "Service", "editjudge")
    assert service["spec"].get("clusterIP") != "None"
    assert selects(service["spec"]["selector"], labels)
    assert service["spec"]["ports"][0]["targetPort"] == router["ports"][0]["name"]
    assert {"cpu", "memory"} <= set(router["resources"]["requests"])
    assert {"cpu", "memory"} <= set(router["resources"]["limits"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert router[probe]["httpGet"]["path"] == "/health"
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert any(selects(b["spec"]["selector"]["matchLabels"], labels) for b in budgets)


def test_images_are_pinned(docs: list[Doc]) -> None:
    for name in ("vllm", "editjudge-router"):
        _, container = workload(docs, name)
        repo, _, tag = container["image"].rpartition(":")
        assert repo and tag and tag != "latest", container["image"]


def test_api_keys_come_from_the_secret_and_the_example_fails_closed(
    docs: list[Doc], tmp_path: Path
) -> None:
    deployment, router = workload(docs, "editjudge-router")
    secret = one(docs, "Secret", "editjudge-api-keys")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in router["volumeMounts"]}
    (key_volume,) = [n for n, v in volumes.items() if "secret" in v]
    assert volumes[key_volume]["secret"]["secretName"] == secret["metadata"]["name"]
    (file_name,) = secret["data"]
    env = env_of(docs, router)
    assert env["EDITJUDGE_API_KEYS_FILE"] == f"{mounts[key_volume]}/{file_name}"

    keys_file = tmp_path / file_name
    keys_file.write_bytes(base64.b64decode(secret["data"][file_name]))
    settings = {k.removeprefix("EDITJUDGE_").lower(): v for k, v in env.items()}
    settings["api_keys_file"] = str(keys_file)
    with pytest.raises(ValidationError, match="lists no keys"):
        Settings(**settings)
    keys_file.write_text(keys_file.read_text() + "a-real-key\n")
    s = Settings(**settings)
    assert s.auth_enabled and s.discovery == "dns"


def test_an_overlay_supplies_real_keys_and_rolls_the_routers(
    docs: list[Doc], tmp_path: Path
) -> None:
    """The README's recipe: an overlay replaces the example Secret; its name (hash) changes."""
    (tmp_path / "keys.txt").write_text("k-one\nk-two\n")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S, tmp_path)],
                "secretGenerator": [
                    {
                        "name": "editjudge-api-keys",
                        "behavior": "replace",
                        "files": ["api-keys=keys.txt"],
                    }
                ],
            }
        )
    )
    overlay = kustomize(tmp_path)
    secret = one(overlay, "Secret", "editjudge-api-keys")
    assert base64.b64decode(secret["data"]["api-keys"]) == b"k-one\nk-two\n"
    assert (
        secret["metadata"]["name"] != one(docs, "Secret", "editjudge-api-keys")["metadata"]["name"]
    )
    deployment, _ = workload(overlay, "editjudge-router")
    names = [
        v.get("secret", {}).get("secretName")
        for v in deployment["spec"]["template"]["spec"]["volumes"]
    ]
    assert secret["metadata"]["name"] in names


def test_engine_command_matches_the_compose_engines(docs: list[Doc]) -> None:
    """Both deployments hand vLLM the same flags."""
    _, vllm = workload(docs, "vllm")
    assert vllm["command"] == ["/bin/sh", "-c"]
    k8s_argv = stub_vllm(vllm["args"][0], env_of(docs, vllm))

    out = subprocess.run(
        [
            COMPOSE,
            "-f",
            "docker-compose.yml",
            "--env-file",
            ".env.example",
            "config",
            "--format=json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        # the k8s ConfigMap's count; compose's default ("auto") derives it from the machine
        env={**os.environ, "API_SERVER_COUNT": "2"},
    )
    engine = json.loads(out.stdout)["services"]["vllm-gpu0"]
    compose_env = {k: str(v) for k, v in engine["environment"].items()}
    compose_argv = run_engine(container_argv(engine, ROOT), compose_env, nproc=64).argv
    assert k8s_argv[:2] == ["serve", "Qwen/Qwen3-VL-30B-A3B-Instruct"]
    assert k8s_argv == compose_argv  # both listen on 8000 inside the container


def stub_vllm(command: str, env: dict[str, str]) -> list[str]:
    """The argv ``vllm`` would get from ``command`` (run by sh with stub executables)."""
    return run_engine_command(command, env, nproc=64).argv
