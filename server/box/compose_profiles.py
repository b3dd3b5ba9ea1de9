"""The compose file's optional profiles: ``monitoring`` (Prometheus scraping the router and every
engine, Grafana with the editjudge dashboard) and ``tls`` (Caddy terminating HTTPS in front of the
router). :mod:`editjudge.server.box.compose` writes them beside the engines and the router."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

PROMETHEUS_IMAGE = "prom/prometheus:v3.7.3"
GRAFANA_IMAGE = "grafana/grafana:12.2.1"
CADDY_IMAGE = "caddy:2.11.4-alpine"
GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards"  # deploy/grafana/provisioning points here


def monitoring_services() -> dict[str, dict[str, Any]]:
    """Prometheus (deploy/prometheus) and Grafana (deploy/grafana), on localhost ports only."""
    prometheus = {
        "image": PROMETHEUS_IMAGE,
        "profiles": ["monitoring"],
        "command": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=${PROMETHEUS_RETENTION:-15d}",
        ],
        "volumes": [
            "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
            "prometheus-data:/prometheus",
        ],
        "configs": [
            {"source": "prometheus-engines", "target": "/etc/prometheus/engines/engines.json"}
        ],
        "ports": ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"],
        "restart": "unless-stopped",
    }
    grafana = {
        "image": GRAFANA_IMAGE,
        "profiles": ["monitoring"],
        "depends_on": ["prometheus"],
        "environment": {
            "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": GRAFANA_DASHBOARDS + "/editjudge.json",
        },
        "volumes": [
            "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro",
            f"./deploy/grafana/dashboards:{GRAFANA_DASHBOARDS}:ro",
            "grafana-data:/var/lib/grafana",
        ],
        "ports": ["127.0.0.1:${GRAFANA_PORT:-3000}:3000"],
        "restart": "unless-stopped",
    }
    return {"prometheus": prometheus, "grafana": grafana}


def tls_service() -> dict[str, Any]:
    """Caddy terminating TLS in front of the router (deploy/caddy/Caddyfile)."""
    return {
        "image": CADDY_IMAGE,
        "profiles": ["tls"],
        "depends_on": ["router"],
        "environment": {
            "TLS_DOMAIN": "${TLS_DOMAIN:-localhost}",
            "TLS_ISSUER": "${TLS_ISSUER:-internal}",
        },
        "ports": [
            "${TLS_HTTP_PORT:-80}:80",
            "${TLS_PORT:-443}:443",
            "${TLS_PORT:-443}:443/udp",
        ],
        "volumes": [
            "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro",
            "caddy-data:/data",
            "caddy-config:/config",
        ],
        "restart": "unless-stopped",
    }


def engine_targets(names: Sequence[str], port: int) -> str:
    """Prometheus file_sd JSON listing the engines' /metrics endpoints (each engine on ``port``
    inside its own container)."""
    targets = [f"{name}:{port}" for name in names]
    return json.dumps([{"targets": targets, "labels": {"service": "vllm"}}])
