"""A tiny authoritative DNS server on loopback UDP, for discovery tests against real lookups.

It answers SRV and A queries from dictionaries the test mutates while it runs; unknown names get
NXDOMAIN, and ``fail = True`` makes every answer SERVFAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class DnsStub(asyncio.DatagramProtocol):
    srv: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    a: dict[str, list[str]] = field(default_factory=dict)
    fail: bool = False
    queries: list[str] = field(default_factory=list)
    transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        self.queries.append(f"{name} {dns.rdatatype.to_text(question.rdtype)}")
        if self.fail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.srv and name not in self.a:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.SRV and self.srv.get(name):
            texts = [f"0 10 {port} {dns.name.from_text(t)}" for t, port in self.srv[name]]
            response.answer.append(dns.rrset.from_text(question.name, 5, "IN", "SRV", *texts))
        elif question.rdtype == dns.rdatatype.A and self.a.get(name):
            response.answer.append(dns.rrset.from_text(question.name, 5, "IN", "A", *self.a[name]))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_stub() -> AsyncIterator[tuple[DnsStub, int]]:
    """Serve a :class:`DnsStub` on ``127.0.0.1``; yields it and its UDP port."""
    loop = asyncio.get_running_loop()
    transport, stub = await loop.create_datagram_endpoint(DnsStub, local_addr=("127.0.0.1", 0))
    try:
        yield stub, int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
