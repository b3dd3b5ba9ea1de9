"""The client's models (``client/_models.py``) agree with the router's wire schemas
(``server/schemas.py``, and the ``limits`` that ``GET /info`` reports): every field the server
sends exists on the client with a type that accepts it and, where the server has a default, the
same default. Checked on the declarations and on real answers of the router."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from editjudge.client import _models as client
from editjudge.server import schemas as server
from tests.client.servers import asgi_router
from tests.helpers import item

# server model -> its client twin; InfoResponse.limits is a plain dict on the server, checked on
# a real answer below
TWINS: dict[type[BaseModel], type[BaseModel]] = {
    server.ScoreResult: client.ScoreResult,
    server.ErrorInfo: client.ErrorInfo,
    server.Fingerprint: client.Fingerprint,
    server.InfoResponse: client.ServerInfo,
    server.Capacity: client.Capacity,
}
UNION_TYPES = (typing.Union, types.UnionType)


def accepts(client_type: Any, server_type: Any) -> bool:
    """Whether every value of ``server_type`` validates as ``client_type`` (structurally)."""
    if client_type is Any:
        return True
    if typing.get_origin(server_type) in UNION_TYPES:
        return all(accepts(client_type, s) for s in typing.get_args(server_type))
    if typing.get_origin(client_type) in UNION_TYPES:
        return any(accepts(c, server_type) for c in typing.get_args(client_type))
    if typing.get_origin(server_type) is typing.Literal:
        if typing.get_origin(client_type) is typing.Literal:
            return set(typing.get_args(server_type)) <= set(typing.get_args(client_type))
        return all(isinstance(v, client_type) for v in typing.get_args(server_type))
    if isinstance(server_type, type) and issubclass(server_type, BaseModel):
        return TWINS.get(server_type) is client_type
    server_origin, client_origin = typing.get_origin(server_type), typing.get_origin(client_type)
    if server_origin is not None or client_origin is not None:
        return server_origin is client_origin and all(
            accepts(c, s)
            for c, s in zip(typing.get_args(client_type), typing.get_args(server_type), strict=True)
        )
    return server_type is client_type or (server_type is int and client_type is float)


def default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


@pytest.mark.parametrize(("server_model", "client_model"), TWINS.items())
def test_every_server_field_is_on_the_client_with_a_compatible_type_and_default(
    server_model: type[BaseModel], client_model: type[BaseModel]
) -> None:
    ours, theirs = client_model.model_fields, server_model.model_fields
    for name, field in theirs.items():
        assert name in ours, f"{client_model.__name__} lacks the server's {name!r}"
        mine = ours[name]
        if name == "limits":
            assert mine.annotation is client.Limits
            continue
        assert accepts(mine.annotation, field.annotation), (name, mine, field)
        if not field.is_required():  # the server may leave it out or send its default
            assert not mine.is_required() and default(mine) == default(field), name
    for name, mine in ours.items():  # a field only the client knows must not be required
        assert name in theirs or not mine.is_required(), name


def test_the_comparison_catches_drift() -> None:
    assert not accepts(str, int) and not accepts(int, float) and accepts(float, int)
    assert not accepts(str, str | None) and accepts(str | None, str)
    assert not accepts(typing.Literal["ok"], typing.Literal["ok", "error"])
    assert not accepts(dict[str, int], dict[str, float])
    assert not accepts(client.ErrorInfo, server.Fingerprint)


def no_extras(model: BaseModel, where: str) -> None:
    """Nothing the server sent landed in ``model_extra``: every field is declared."""
    assert not model.model_extra, f"{where}: undeclared {sorted(model.model_extra or {})}"
    for name, value in model:
        if isinstance(value, BaseModel):
            no_extras(value, f"{where}.{name}")


async def test_real_answers_parse_with_every_field_declared() -> None:
    async with asgi_router(2) as (http, _, __):
        info_json = (await http.get("/info")).json()
        scored = (await http.post("/score", json={"items": [item(0), item(1, image="")]})).json()
    info = client.ServerInfo.model_validate(info_json)
    no_extras(info, "GET /info")
    assert set(info_json["limits"]) == set(client.Limits.model_fields)
    assert info.capacity is not None and info.capacity.healthy_backends == 2
    ok, bad = (client.ScoreResult.model_validate(r) for r in scored["results"])
    assert ok.ok and ok.fingerprint is not None and bad.error is not None
    no_extras(ok, "a scored item")
    no_extras(bad, "an error item")


async def test_client_limit_defaults_are_the_routers_defaults() -> None:
    # A router that predates a limit gets the client's default for it: the router's own, or
    # None where the client then picks its own (the request deadline).
    async with asgi_router(1) as (http, _, __):
        limits = (await http.get("/info")).json()["limits"]
    for name, field in client.Limits.model_fields.items():
        assert default(field) in (limits[name], None), (name, default(field), limits[name])
