from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from editjudge.server.config import Settings


def test_defaults_match_the_contract() -> None:
    s = Settings()
    assert s.port == 8000
    assert s.max_body_bytes == 64 * 1024 * 1024
    assert s.max_image_pixels == 40_000_000
    assert s.protocol == "viescore"
    assert s.model is None and s.backends == [] and not s.auth_enabled


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITJUDGE_BACKENDS", "http://gpu0:8001, gpu1:8002/ ,")
    monkeypatch.setenv("EDITJUDGE_PORT", "9000")
    monkeypatch.setenv("EDITJUDGE_MODEL", "Qwen/Qwen3-VL-8B-Instruct")
    monkeypatch.setenv("EDITJUDGE_MAX_BATCH_ITEMS", "12")
    monkeypatch.setenv("EDITJUDGE_HEALTH_INTERVAL_S", "0.5")
    monkeypatch.setenv("EDITJUDGE_REQUEST_TIMEOUT_S", "30")
    monkeypatch.setenv("EDITJUDGE_API_KEYS", "k1,k2")
    s = Settings()
    assert s.backends == ["http://gpu0:8001", "http://gpu1:8002"]
    assert (s.port, s.model, s.max_batch_items) == (9000, "Qwen/Qwen3-VL-8B-Instruct", 12)
    assert (s.health_interval_s, s.request_timeout_s) == (0.5, 30.0)
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]


def test_api_keys_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITJUDGE_API_KEYS", "super-secret-key")
    s = Settings()
    assert "super-secret-key" not in repr(s) and "super-secret-key" not in str(s.model_dump())


def test_keys_file(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text("# team keys\nalpha\n\n  beta  \n")
    s = Settings(api_keys_file=f)
    assert [k.get_secret_value() for k in s.api_keys] == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EDITJUDGE_PORT", "0"),
        ("EDITJUDGE_PORT", "http"),
        ("EDITJUDGE_MAX_BODY_BYTES", "-1"),
        ("EDITJUDGE_BACKENDS", "http://a:1,http://a:1"),
        ("EDITJUDGE_ROUTING_POLICY", "random"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_discovery_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().discovery == "static"
    monkeypatch.setenv("EDITJUDGE_DISCOVERY", "dns")
    monkeypatch.setenv("EDITJUDGE_DISCOVERY_DNS_NAME", "vllm-engines")
    monkeypatch.setenv("EDITJUDGE_DISCOVERY_PORT", "8001")
    monkeypatch.setenv("EDITJUDGE_DISCOVERY_INTERVAL_S", "2.5")
    s = Settings()
    assert (s.discovery, s.discovery_dns_name) == ("dns", "vllm-engines")
    assert (s.discovery_port, s.discovery_interval_s, s.discovery_scheme) == (8001, 2.5, "http")


@pytest.mark.parametrize(
    "env",
    [
        {"EDITJUDGE_DISCOVERY": "dns"},  # no name to resolve
        {"EDITJUDGE_DISCOVERY": "consul"},
        {
            "EDITJUDGE_DISCOVERY": "dns",
            "EDITJUDGE_DISCOVERY_DNS_NAME": "e",
            "EDITJUDGE_DISCOVERY_PORT": "0",
        },
    ],
)
def test_invalid_discovery_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_keys_file_without_keys_is_refused(tmp_path: Path) -> None:
    """Pointing at a key file means auth was meant: an empty one must not switch it off."""
    f = tmp_path / "keys"
    f.write_text("# put one API key per line here\n\n")
    with pytest.raises(ValidationError, match="lists no keys"):
        Settings(api_keys_file=f)
