"""Schemathesis over the router's own OpenAPI document: generated and mutated requests, no 5xx.

The router runs as deployed (``python -m server``) in front of a fake engine process; the schema is
the one the app serves at ``/openapi.json``. Examples are bounded so the run stays well under a
minute; set ``FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
from editjudge.server.config import Settings
from tests.processes import Procs

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

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
