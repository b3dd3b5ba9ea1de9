"""Retry decisions, Retry-After parsing, batch packing, and error mapping."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from editjudge.client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InputError,
    Limits,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ScoreResult,
    ServerError,
    ServiceUnavailableError,
)
from editjudge.client._exceptions import error_for_status
from editjudge.client._retry import parse_retry_after
from editjudge.client._wire import batch_body, error_from_response, pack


def test_retry_after_seconds_dates_and_garbage() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(date, now=2_000_000) == 0.0


def test_backoff_is_jittered_bounded_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    for attempt in range(10):
        waits = [policy.backoff(attempt) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert all(0 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered, not a fixed schedule
    assert all(policy.backoff(0, retry_after=2.0) >= 2.0 for _ in range(50))
    assert policy.backoff(0, retry_after=3600) == 4.0  # a silly hint is capped


def test_what_is_retried() -> None:
    policy = RetryPolicy(max_attempts=3)
    retried = [
        APIConnectionError("refused"),
        APITimeoutError("slow"),
        error_for_status(429, "overloaded", "busy"),
        error_for_status(503, "no_healthy_backend", "down"),
        error_for_status(502, "http_502", "Bad Gateway"),
    ]
    for error in retried:
        assert policy.should_retry(error, 0) and policy.should_retry(error, 1)
        assert not policy.should_retry(error, 2)  # the third try was the last
    for status in (400, 401, 403, 404, 413, 415, 422, 500, 504):
        assert not policy.should_retry(error_for_status(status, "x", "y"), 0), status
    assert not policy.should_retry(InputError("bad"), 0)
    assert not RetryPolicy(max_attempts=1).should_retry(APIConnectionError("x"), 0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_item_retry_only_for_momentary_service_states() -> None:
    policy = RetryPolicy()
    assert policy.retry_item(ScoreResult.failed("a", "no_healthy_backend", "down"))
    assert policy.retry_item(ScoreResult.failed("a", "backend_unavailable", "refused"))
    for code in ("unparseable_reply", "invalid_image", "deadline_exceeded", "backend_timeout"):
        assert not policy.retry_item(ScoreResult.failed("a", code, "x"))
    assert not policy.retry_item(ScoreResult(id="a", status="ok", score=5.0))


def test_error_classes_by_status() -> None:
    assert isinstance(error_for_status(401, "unauthorized", "key"), AuthenticationError)
    assert isinstance(error_for_status(403, "forbidden", "key"), AuthenticationError)
    assert isinstance(error_for_status(404, "not_found", "no"), NotFoundError)
    assert isinstance(error_for_status(404, "not_found", "no"), BadRequestError)
    assert isinstance(error_for_status(413, "body_too_large", "big"), BadRequestError)
    assert isinstance(error_for_status(429, "overloaded", "busy"), RateLimitError)
    assert isinstance(error_for_status(503, "x", "y"), ServiceUnavailableError)
    assert isinstance(error_for_status(504, "deadline_exceeded", "y"), ServerError)
    assert str(error_for_status(422, "invalid_request", "instruction: missing")) == (
        "422 invalid_request: instruction: missing"
    )


def test_error_from_response_reads_the_body_or_falls_back_to_the_status_line() -> None:
    r = httpx.Response(
        429,
        json={"error": {"code": "overloaded", "message": "at capacity"}},
        headers={"retry-after": "2"},
    )
    err = error_from_response(r)
    assert isinstance(err, RateLimitError)
    assert (err.code, err.message, err.retry_after) == ("overloaded", "at capacity", 2.0)
    html = error_from_response(httpx.Response(502, text="<html>nginx</html>"))
    assert (html.status, html.code, html.message) == (502, "http_502", "Bad Gateway")


def test_pack_respects_body_bytes_and_item_count() -> None:
    limits = Limits(max_body_bytes=1000, max_batch_items=3)
    sizes = [300, 300, 300, 300, 100, 100, 100, 100, 900]
    groups = pack(sizes, None, limits)
    assert [i for g in groups for i in g] == list(range(len(sizes)))  # order kept, none lost
    for group in groups:
        body = batch_body([b"x" * sizes[i] for i in group], None)
        assert len(body) <= 1000 and len(group) <= 3
    assert groups[0] == [0, 1, 2] and groups[-1] == [8]
    with_protocol = batch_body([b"{}"], "viescore")
    assert with_protocol == b'{"items":[{}],"protocol":"viescore"}'


def test_server_urls_are_normalised_or_refused() -> None:
    from editjudge.client._async_client import normalise_url

    assert normalise_url("gpu-box:8000") == "http://gpu-box:8000"
    assert normalise_url(" https://judge.example/ ") == "https://judge.example"
    for bad in ("ftp://gpu-box", "http://", ""):
        with pytest.raises(ValueError):
            normalise_url(bad)
