"""Every editjudge_* series the Grafana dashboard queries exists in /metrics after real traffic."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import fake_engines, item, router

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/editjudge.json"

# What the issue asks the router to export, by the names the dashboard must chart.
REQUIRED = {
    "editjudge_requests_total",
    "editjudge_items_total",
    "editjudge_scores_parsed_total",
    "editjudge_scores_failed_total",
    "editjudge_backend_in_flight",
    "editjudge_backend_latency_seconds_bucket",
    "editjudge_retries_total",
    "editjudge_rejected_total",
}


def dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> list[str]:
        out = []
        for panel in panels:
            out += [t["expr"] for t in panel.get("targets", [])]
            out += walk(panel.get("panels", []))
        return out

    return walk(json.loads(DASHBOARD.read_text())["panels"])


def queried_names() -> set[str]:
    return {m for e in dashboard_exprs() for m in re.findall(r"\beditjudge_[a-zA-Z0-9_]+", e)}


def exported(text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> label sets, from Prometheus text exposition."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample.labels)
    return out


def test_dashboard_is_valid_promql_and_charts_the_required_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "editjudge" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for expr in dashboard_exprs():
        # Grafana's interval variables are not PromQL; substitute what Grafana would.
        promql_parser.parse(expr.replace("$__rate_interval", "1m").replace("$__interval", "15s"))
    assert queried_names() >= REQUIRED


async def test_every_dashboard_metric_is_exported_after_traffic() -> None:
    async with fake_engines(2, latency_s=0.05) as engines:
        (good, _), (flaky, _) = engines
        urls = [u for _, u in engines]
        async with router(urls, max_queued_items=4) as client:
            # ok items on both engines
            r = await client.post("/score", json={"items": [item(i) for i in range(8)]})
            assert r.status_code == 200
            # a failing engine: items placed there are retried on the other one
            flaky.status = 500
            r = await client.post("/score", json={"items": [item(i) for i in range(8)]})
            assert all(x["status"] == "ok" for x in r.json()["results"])
            flaky.status = 200
            # an unparseable judge reply
            good.reply = flaky.reply = lambda body: "no score here"
            r = await client.post("/score", json=item(0))
            assert r.json()["error"]["code"] == "unparseable_reply"
            good.reply = flaky.reply = None
            # 429: the router's budget is full
            busy = asyncio.create_task(
                client.post("/score", json={"items": [item(i) for i in range(4)]})
            )
            await asyncio.sleep(0.02)
            assert (await client.post("/score", json=item(9))).status_code == 429
            assert (await busy).status_code == 200
            # 503: no healthy backend
            good.healthy = flaky.healthy = False
            while (await client.get("/ready")).status_code != 503:
                await asyncio.sleep(0.05)
            assert (await client.post("/score", json=item(0))).status_code == 503

            text = (await client.get("/metrics")).text

    samples = exported(text)
    missing = {name for name in queried_names() if name not in samples}
    assert not missing, f"dashboard queries series /metrics lacks: {sorted(missing)}"
    rejected = {labels["code"] for labels in samples["editjudge_rejected_total"]}
    assert {"overloaded", "no_healthy_backend"} <= rejected
    statuses = {labels["status"] for labels in samples["editjudge_requests_total"]}
    assert {"200", "429", "503"} <= statuses
    assert {labels["backend"] for labels in samples["editjudge_backend_in_flight"]} == set(urls)
