"""When no HTTP answer came back: say why in words a user can act on, and whether the server was
ever reached.

httpx reports a refused connection as "All connection attempts failed" and a typo in the host as
"[Errno -2] Name or service not known"; the cause is further down the exception chain.
"""

from __future__ import annotations

import errno
import socket
import ssl

import httpx

from ._exceptions import APIConnectionError, APITimeoutError


def connection_error(
    exc: httpx.TransportError, url: str, timeout: float, connect_timeout: float
) -> APIConnectionError:
    """The typed error for ``exc``, one line that names ``url``."""
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError(f"cannot reach {url}: no connection within {connect_timeout:g}s")
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} within {timeout:g}s")
    return APIConnectionError(f"cannot reach {url}: {_why(exc, url)}")


def before_connecting(exc: httpx.TransportError) -> bool:
    """Whether ``exc`` happened before a connection stood (refused, unknown host, connect
    timeout, TLS handshake), as opposed to a connection that broke or went quiet."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _why(exc: BaseException, url: str) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return f"unknown host {httpx.URL(url).host!r} ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there: is the router running?)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return cause.strerror or str(cause)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
