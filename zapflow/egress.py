"""The egress policy: every outbound request whose destination a tenant chooses goes through here.

A flow's ``http_request`` node and the media URLs an Evolution server fetches for us are aimed by
tenants; without a policy they reach the host's loopback services (Temporal, Postgres, Redis, the
API), the private network and the cloud metadata endpoint. The policy:

- only ``http`` and ``https``; header names that would change where or how the request goes
  (``Host``, ``Content-Length``, ``Transfer-Encoding``, ``Connection``, proxy headers...) refused;
- the host is resolved and *every* address checked: loopback, private (RFC 1918, ULA), link-local,
  shared (CGNAT 100.64/10), multicast, unspecified, reserved, documentation and other
  special-purpose ranges and the cloud metadata addresses are refused, in IPv4, IPv6 and the IPv6
  forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4; Teredo is special-purpose).
  Literal addresses in any spelling (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``) are
  read by the C library's own parser (``getaddrinfo`` with ``AI_NUMERICHOST``, no DNS), the
  same one a connection would use;
- the connection goes to the address that was checked (a network backend under httpx resolves,
  checks and connects in one step, so a name cannot resolve differently for the connection: no
  DNS rebinding), and every redirect hop opens its connection through the same backend;
- environment proxies are ignored (a proxy would connect for us, unchecked);
- a total deadline and a response size cap read from the stream.

The operator's allow-list (``ZAPFLOW_EGRESS_ALLOW``: CIDRs, addresses, host names) lets tenants
reach internal hosts on purpose, e.g. a company's CRM on the private network.

Checked here and nowhere else; ``check_url`` is the static part (no DNS), for validation time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_DEADLINE_SECONDS = 30.0
MAX_REDIRECTS = 5
SCHEMES = frozenset({"http", "https"})
# headers that would change where or how the request travels, which the client sets itself
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "accept-encoding",  # identity only: a compressed answer could expand past the size cap
        "x-forwarded-for",
        "x-forwarded-host",
    }
)
# names that must never be resolved for a tenant, whatever the resolver says
FORBIDDEN_NAMES = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "168.63.129.16",  # Azure wire server (a public-looking address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
SPECIAL_V4 = ipaddress.ip_network("192.0.0.0/24")  # IETF protocol assignments
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
COMPATIBLE_V6 = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses


class EgressRefused(Exception):
    """The policy refuses this destination or request; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(address: IPAddress) -> str | None:
    """Why a tenant may not reach this address, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal(address.ipv4_mapped)
        if address in COMPATIBLE_V6:
            return f"{address} is an IPv4-compatible IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := refusal(embedded)):
            return f"{address} carries {embedded}: {reason}"
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    for test, kind in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_site_local", "a site-local"),
    ):
        if getattr(address, test, False):
            return f"{address} is {kind} address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_V4:
        return f"{address} is a shared (carrier-grade NAT) address"
    if address.is_private or address.is_reserved or not address.is_global:
        return f"{address} is a private or special-purpose address"
    if isinstance(address, ipaddress.IPv4Address) and address in SPECIAL_V4:
        return f"{address} is a special-purpose address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def numeric_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for (any spelling the C library accepts:
    dotted, short, octal, hex, one integer; IPv6 with or without brackets), else None. No DNS."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        info = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(info[0][4][0])


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host``, in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations tenants may reach: public unicast addresses, plus the operator's
    allowed networks and host names (an allowed name may resolve to any address)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(cls, entries: Iterable[str], resolver: Resolver = system_resolver) -> EgressPolicy:
        """From ``ZAPFLOW_EGRESS_ALLOW`` entries: CIDRs or addresses, else host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_name(entry))
        return cls(tuple(networks), frozenset(hosts), resolver)

    def allows(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks)

    def check_address(self, address: IPAddress) -> None:
        if self.allows(address):
            return
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if mapped is not None and self.allows(mapped):
            return
        if reason := refusal(address):
            raise EgressRefused(reason)

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """The parts of a URL that need no DNS: scheme, host, literal addresses, forbidden names."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise EgressRefused(f"not a valid URL: {exc}") from None
        if parsed.scheme not in SCHEMES:
            raise EgressRefused(f"only http and https URLs are allowed, not {parsed.scheme!r}")
        if not parsed.host:
            raise EgressRefused("the URL has no host")
        self.check_host(parsed.host)
        return parsed

    def check_host(self, host: str) -> IPAddress | None:
        """The literal address the host stands for (checked), or None for a name to resolve."""
        address = numeric_address(host)
        if address is not None:
            self.check_address(address)
            return address
        name = _name(host)
        if name in self.hosts:
            return None
        if name in FORBIDDEN_NAMES or name.endswith(".localhost"):
            raise EgressRefused(f"{host} is not a host tenants may reach")
        return None

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to, all checked; refused if any of them is refused (a name
        that mixes public and private answers is not a public name)."""
        literal = self.check_host(host)
        if literal is not None:
            return [literal]
        addresses = await self.resolver(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        if _name(host) not in self.hosts:
            for address in addresses:
                try:
                    self.check_address(address)
                except EgressRefused as exc:
                    raise EgressRefused(f"{host} resolves to {exc.reason}") from None
        return addresses


def _name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@lru_cache(maxsize=8)
def egress_policy(allow: tuple[str, ...]) -> EgressPolicy:
    """The policy for ``Settings.egress_allow`` (cached: one per distinct allow-list)."""
    return EgressPolicy.parse(allow)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects in one step, to the very addresses it checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(  # httpcore's interface, timeout included
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self._policy.resolve(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt around ours (same settings)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=50,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(policy),
        )


@dataclass(frozen=True)
class EgressResponse:
    status: int
    headers: httpx.Headers
    content: bytes
    encoding: str  # the charset the response declares, else utf-8

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


class Egress:
    """The HTTP client for requests a tenant aims (one per process; pooled per host name)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._client = httpx.AsyncClient(
            transport=_CheckedTransport(policy, ssl.create_default_context()),
            trust_env=False,
            follow_redirects=False,
            max_redirects=MAX_REDIRECTS,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        deadline: float = MAX_DEADLINE_SECONDS,
        max_bytes: int,
        follow_redirects: bool = False,
    ) -> EgressResponse:
        """The response, read whole within ``deadline`` seconds (capped at 30) and at most
        ``max_bytes`` long. ``EgressRefused`` when the policy refuses it, ``httpx.HTTPError``
        when the network does (``httpx.TimeoutException`` for the deadline)."""
        self.policy.check_url(url)
        headers = dict(headers or {})
        if bad := sorted(h for h in headers if h.lower() in FORBIDDEN_HEADERS):
            raise EgressRefused(f"header {bad[0]!r} may not be set")
        deadline = min(deadline, MAX_DEADLINE_SECONDS)
        try:
            async with asyncio.timeout(deadline):
                async with self._client.stream(
                    method,
                    url,
                    headers={**headers, "accept-encoding": "identity"},
                    content=content,
                    timeout=deadline,
                    follow_redirects=follow_redirects,
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise EgressRefused(f"the response is larger than {max_bytes} bytes")
        except TimeoutError:
            raise httpx.TimeoutException(f"no complete answer within {deadline:g} s") from None
        return EgressResponse(
            response.status_code, response.headers, bytes(body), response.encoding or "utf-8"
        )
