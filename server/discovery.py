"""Backend discovery: keep the pool's backend set in step with DNS, so engines come and go live.

In ``dns`` mode the router resolves ``DISCOVERY_DNS_NAME`` every ``DISCOVERY_INTERVAL_S`` seconds
and hands the answer (plus any static ``BACKENDS``) to :meth:`BackendPool.set_urls`. A plain name
is looked up for A/AAAA records through the system resolver (``getaddrinfo``: search domains and
``/etc/hosts`` apply), each address becoming ``scheme://address:DISCOVERY_PORT``; this is what a
Kubernetes headless Service answers, one address per *ready* pod. A name that starts with ``_``
(``_http._tcp.engines.ns.svc.cluster.local``) is looked up for SRV records with dnspython, and
each target brings its own port. SRV priority and weight are ignored: every engine is an equal
member of the pool, and the routing policy balances load.

A name that does not exist or has no records means "no engines now", and the pool empties. Any
other failure - a timeout, a server failure, a malformed answer - keeps the last known set: a DNS
hiccup must not take healthy engines out of rotation, and it never ends the loop. Resolvers are
plain async callables (:class:`Resolver`), so tests inject answers without a DNS server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.asyncresolver
import dns.name
import dns.resolver

from .config import Settings
from .metrics import Metrics
from .pool import BackendPool

log = logging.getLogger("editjudge.discovery")

Endpoint = tuple[str, int]

# getaddrinfo's "this name has no addresses" (NXDOMAIN / no data), as opposed to DNS trouble
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class Resolver(Protocol):
    """Resolve ``name`` to engine endpoints; ``port`` is the port for answers that carry none.

    Return an empty sequence when the name has no records (no engines); raise on any failure
    that says nothing about the engines (timeouts, unreachable DNS server).
    """

    async def __call__(self, name: str, port: int) -> Sequence[Endpoint]: ...


async def resolve_addresses(name: str, port: int) -> list[Endpoint]:
    """A/AAAA lookup through the system resolver (``getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            return []
        raise
    return sorted({(str(info[4][0]), port) for info in infos})


class SrvResolver:
    """SRV lookup with dnspython; ``nameservers`` overrides ``/etc/resolv.conf`` (tests)."""

    def __init__(
        self, nameservers: Sequence[str] | None = None, port: int = 53, timeout_s: float = 5.0
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout_s

    async def __call__(self, name: str, port: int) -> list[Endpoint]:
        try:
            # search=True: a short name gets the pod's search domains, as getaddrinfo gives it.
            answer = await self._resolver.resolve(name, "SRV", search=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        out = set()
        for record in answer:
            if record.target != dns.name.root:  # "." means "service decidedly not available"
                out.add((record.target.to_text(omit_final_dot=True), int(record.port)))
        return sorted(out)


def default_resolver(name: str) -> Resolver:
    """SRV for ``_service._proto.name`` names, A/AAAA otherwise."""
    return SrvResolver() if name.startswith("_") else resolve_addresses


def endpoint_url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``, with IPv6 literals in brackets; refuses malformed endpoints."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"not a port: {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"not a host name or address: {host!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if any(c in host for c in "/?#@%:[] "):  # would change the URL's meaning
            raise ValueError(f"not a host name or address: {host!r}") from None
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://[{host}]:{port}" if address.version == 6 else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class Change:
    """What one discovery round did to the pool."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


OnChange = Callable[[Change], Awaitable[None]]


class Discovery:
    """Re-resolve one DNS name periodically and apply the answer to a :class:`BackendPool`."""

    def __init__(
        self,
        pool: BackendPool,
        resolver: Resolver,
        name: str,
        *,
        port: int,
        interval_s: float,
        scheme: str = "http",
        static: Iterable[str] = (),
        on_change: OnChange | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool, self.resolver, self.name = pool, resolver, name
        self.port, self.interval_s, self.scheme = port, interval_s, scheme
        self.static = list(static)
        self.on_change = on_change
        self.metrics = metrics
        self.timeout_s = min(10.0, max(1.0, interval_s))

    async def refresh(self) -> Change | None:
        """One lookup; returns what changed, or None when the lookup failed (set kept)."""
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns the answer and loses a cancellation
            # that comes with it (CPython gh-86296), and the loop then never ends.
            async with asyncio.timeout(self.timeout_s):
                answer = await self.resolver(self.name, self.port)
            _raise_if_cancelled()  # a cancelled round changes nothing
            urls = self._urls(answer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a resolver's failure, whatever its type, keeps the set
            log.warning("discovery: lookup of %s failed (%r); set kept", self.name, exc)
            self._count("error")
            return None
        self._count("ok")
        wanted = list(dict.fromkeys([*self.static, *urls]))
        before = [b.url for b in self.pool.backends]
        change = Change(
            added=[u for u in wanted if u not in before],
            removed=[u for u in before if u not in wanted],
        )
        if change:
            log.info(
                "discovery: %s -> %d backends (+%s -%s)",
                self.name,
                len(wanted),
                ",".join(change.added) or "none",
                ",".join(change.removed) or "none",
            )
            if not urls:
                log.warning("discovery: %s has no records: no engines discovered", self.name)
            self.pool.set_urls(wanted)
            if self.on_change is not None:
                await self.on_change(change)
        return change

    def _urls(self, answer: object) -> list[str]:
        if not isinstance(answer, Iterable) or isinstance(answer, str | bytes):
            raise ValueError(f"resolver answered {type(answer).__name__}, not endpoints")
        urls, bad = set(), []
        for entry in answer:
            try:
                host, port = entry
                urls.add(endpoint_url(self.scheme, host, port))
            except (TypeError, ValueError):
                bad.append(entry)
        if bad:
            log.warning("discovery: ignoring malformed answers for %s: %r", self.name, bad[:5])
            if not urls:
                raise ValueError("every record in the answer was malformed")
        return sorted(urls)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.discovery_refreshes.labels(outcome).inc()

    async def run(self) -> None:
        """Refresh forever, every ``interval_s`` seconds; nothing but cancellation stops it."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. an on_change hook failing: log it, keep discovering
                log.exception("discovery: refresh of %s failed", self.name)
            _raise_if_cancelled()  # one that a failed lookup or the hook swallowed


def _raise_if_cancelled() -> None:
    """Raise a cancellation of this task that code below it swallowed (and nobody withdrew).

    dnspython waits in ``asyncio.wait_for``, which on Python 3.11 returns the DNS reply instead of
    raising a cancellation that comes with it (CPython gh-86296). Discovery's loop must end anyway:
    the router's shutdown waits for it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def from_settings(
    settings: Settings,
    pool: BackendPool,
    *,
    resolver: Resolver | None = None,
    on_change: OnChange | None = None,
    metrics: Metrics | None = None,
) -> Discovery | None:
    """The :class:`Discovery` that ``settings`` ask for, or None in ``static`` mode."""
    if settings.discovery != "dns" or not settings.discovery_dns_name:
        return None
    name = settings.discovery_dns_name
    return Discovery(
        pool,
        resolver or default_resolver(name),
        name,
        port=settings.discovery_port,
        interval_s=settings.discovery_interval_s,
        scheme=settings.discovery_scheme,
        static=settings.backends,
        on_change=on_change,
        metrics=metrics,
    )
