"""How the router is served: what uvicorn is told, checked on a real socket."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

from editjudge.server.testing import LocalRouter

REQUEST = b"GET /health HTTP/1.1\r\nHost: router\r\n\r\n"


def exchange(sock: socket.socket) -> bytes:
    """Send one request and read its whole answer; its status line (empty if the peer closed)."""
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert found is not None, head
    length = int(found.group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        body += chunk
    return head.split(b"\r\n", 1)[0]


def test_an_idle_connection_outlives_a_clients_five_second_keep_alive() -> None:
    # httpx (the SDK's transport) keeps an idle connection for 5 s, uvicorn's own default too:
    # with equal timeouts a request can go out on a connection the router is just closing.
    with LocalRouter(1, wait_ready=False) as router:
        url = urlsplit(router.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            assert exchange(sock) == b"HTTP/1.1 200 OK"
            time.sleep(5.5)
            assert exchange(sock) == b"HTTP/1.1 200 OK"  # the same connection, still open


def test_no_server_header_names_the_software() -> None:
    with LocalRouter(1, wait_ready=False) as router:
        url = urlsplit(router.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(REQUEST)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head = data.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 200") and b"\r\nserver:" not in head
