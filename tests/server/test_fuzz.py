"""Schemathesis over the router's own OpenAPI document: generated and mutated requests, no 5xx.

The router runs as deployed (``python -m server``) in front of a fake engine process; the schema is
the one the app serves at ``/openapi.json``. Examples are bounded so the run stays well under a
minute; set ``FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from editjudge.server.app import create_app
from editjudge.server.catalog import build_protocols
from editjudge.server.config import Settings
from tests.processes import Procs

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
TEMPLATE = """
type = "rubric"
fields = ["faithfulness"]
range = [1, 3]
prompt = "Judge {instruction}:{image}"
"""

# The document the app serves (no lifespan needed to build it).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@pytest.fixture(scope="module")
def live_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs = Procs(tmp_path_factory.mktemp("fuzz"))
    try:
        engine = procs.engine()
        router = procs.router([engine.url], env={"EDITJUDGE_MAX_BATCH_ITEMS": "16"})
        served = httpx.get(router.url + "/openapi.json").json()
        assert served == schema.raw_schema, "the fuzzed schema is not the one the app serves"
        yield router.url
    finally:
        procs.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_gets_a_5xx(case: schemathesis.Case, live_router: str) -> None:
    response = case.call(base_url=live_router, timeout=30)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_schema_refs_resolve() -> None:
    """Every ``$ref`` in the document points at a component that exists."""
    doc = schema.raw_schema
    names = set(doc["components"]["schemas"])

    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield str(value)
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(doc))
    assert found and all(r.startswith("#/components/schemas/") for r in found)
    assert {r.rsplit("/", 1)[1] for r in found} <= names


def test_schema_tells_image_encoding_protocol_names_and_the_ids_rule(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(TEMPLATE)
    settings = Settings(templates_dir=tmp_path)
    served = [p.name for p in build_protocols(settings)]
    assert "mine" in served and "viescore" in served
    doc = create_app(settings).openapi()
    item = doc["components"]["schemas"]["ScoreItem"]["properties"]
    bare, url = item["image"]["anyOf"]
    assert bare["format"] == "byte" and bare["contentEncoding"] == "base64"
    assert url["pattern"].startswith("^data:")
    assert _enum(item["protocol"]) == served
    group = doc["paths"]["/score/group"]["post"]["requestBody"]["content"]["application/json"]
    props = group["schema"]["properties"]
    assert _enum(props["protocol"]) == served
    ids = props["ids"]["anyOf"][0]
    assert ids["items"]["maxLength"] == 512
    assert "as many ids as images" in props["ids"]["description"]
    assert props["images"]["items"]["anyOf"][0]["format"] == "byte"
    # Another app's protocols do not leak into this document, nor this one's into it.
    other = create_app(Settings()).openapi()["components"]["schemas"]["BatchRequest"]
    assert "mine" not in _enum(other["properties"]["protocol"])
    assert _enum(item["protocol"]) == served


def _enum(prop: dict[str, Any]) -> list[str]:
    branches = prop.get("anyOf", [prop])
    return next(list(b["enum"]) for b in branches if b.get("type") == "string")
