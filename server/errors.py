"""Typed errors of the router. Each carries a machine-readable ``code`` and an HTTP status.

::

    EditJudgeError                     code, status, message
    ├── RequestError                   4xx: the caller sent something we will not score
    │   ├── InvalidJSON                400 invalid_json
    │   ├── InvalidRequest             422 invalid_request (missing / empty / wrong-typed fields)
    │   ├── UnsupportedMediaType       415 unsupported_media_type
    │   ├── BodyTooLarge               413 body_too_large
    │   ├── BodyTimeout                408 body_timeout (the body arrived too slowly)
    │   ├── ClientDisconnected         499 client_disconnected (gone before its body was read)
    │   ├── TooManyItems               413 too_many_items
    │   ├── UnknownProtocol            422 unknown_protocol
    │   │   └── ProtocolUnavailable    422 protocol_unavailable (known, not configured here)
    │   ├── Unauthorized               401 unauthorized
    │   └── ImageError                 an image failed validation
    │       ├── InvalidImage           422 invalid_image (not base64, not an image, truncated)
    │       ├── UnsupportedImageFormat 415 unsupported_image_format
    │       ├── ImageTooLarge          413 image_too_large (encoded bytes)
    │       └── TooManyPixels          413 too_many_pixels (decompression-bomb guard)
    ├── ServiceError                   5xx / 429: we could not serve a valid request now
    │   ├── Overloaded                 429 overloaded (router-wide budget spent; Retry-After)
    │   ├── NoHealthyBackend           503 no_healthy_backend (Retry-After)
    │   └── DeadlineExceeded           504 deadline_exceeded
    └── BackendError                   one call to one engine failed (retried on another)
        ├── BackendUnavailable         connection refused / reset
        ├── BackendTimeout             no reply within REQUEST_TIMEOUT_S
        └── BackendHTTPError           a non-2xx reply (``retryable`` for 5xx/429)

Per-item outcomes that are not exceptions (a judge reply without a valid score) are reported as
items with ``status: "error"`` and codes such as ``unparseable_reply`` and ``truncated_reply``; see
:mod:`editjudge.server.scoring`.
"""

from __future__ import annotations


class EditJudgeError(Exception):
    """Root of every error the router raises on purpose."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class RequestError(EditJudgeError):
    """The request (or one batch item) is invalid; retrying it unchanged will not help."""

    status = 400


class InvalidJSON(RequestError):
    code, status = "invalid_json", 400


class InvalidRequest(RequestError):
    code, status = "invalid_request", 422


class UnsupportedMediaType(RequestError):
    code, status = "unsupported_media_type", 415


class BodyTooLarge(RequestError):
    code, status = "body_too_large", 413


class BodyTimeout(RequestError):
    code, status = "body_timeout", 408


class ClientDisconnected(RequestError):
    """The caller closed the connection mid-upload; nobody reads the answer, it is only logged."""

    code, status = "client_disconnected", 499


class TooManyItems(RequestError):
    code, status = "too_many_items", 413


class UnknownProtocol(RequestError):
    code, status = "unknown_protocol", 422


class ProtocolUnavailable(UnknownProtocol):
    """A protocol this router knows but cannot serve as configured; the message says how."""

    code = "protocol_unavailable"


class Unauthorized(RequestError):
    code, status = "unauthorized", 401


class ImageError(RequestError):
    """An image failed validation."""

    code, status = "invalid_image", 422


class InvalidImage(ImageError):
    code, status = "invalid_image", 422


class UnsupportedImageFormat(ImageError):
    code, status = "unsupported_image_format", 415


class ImageTooLarge(ImageError):
    code, status = "image_too_large", 413


class TooManyPixels(ImageError):
    code, status = "too_many_pixels", 413


class ServiceError(EditJudgeError):
    """A valid request that cannot be served right now."""

    status = 503
    retry_after_s: float | None = None

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(ServiceError):
    code, status = "overloaded", 429


class NoHealthyBackend(ServiceError):
    code, status = "no_healthy_backend", 503


class DeadlineExceeded(ServiceError):
    code, status = "deadline_exceeded", 504


class BackendError(EditJudgeError):
    """One call to one engine failed. ``retryable`` says whether another engine may succeed."""

    code, status = "backend_error", 502
    retryable = True

    def __init__(self, message: str, backend: str) -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    code = "backend_timeout"


class BackendHTTPError(BackendError):
    code = "backend_http_error"

    def __init__(self, message: str, backend: str, http_status: int, body: str) -> None:
        super().__init__(message, backend)
        self.http_status = http_status
        self.body = body
        # A 4xx means this request is wrong for any engine (e.g. prompt too long), except 429.
        self.retryable = http_status >= 500 or http_status == 429
