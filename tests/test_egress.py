"""The egress policy (zapflow/egress.py) on its own: every refused form is refused before a socket
is opened or a name looked up; allowed requests go to the address that was checked, and are
bounded in redirects, size and time. The only servers reached are on loopback, allowed for the
test through the operator's allow-list (the policy refuses loopback otherwise)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import httpx
import pytest

from tests.fixtures.network import network_log
from zapflow.config import ConfigError, load_settings
from zapflow.egress import Egress, EgressPolicy, EgressRefused, IPAddress, egress_policy
from zapflow.flows.validation import static_url

REFUSED_URLS = [
    # loopback, in every spelling the C library reads
    "http://127.0.0.1/",
    "http://127.0.0.1:7233/",
    "http://2130706433/",
    "http://017700000001/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",  # httpx refuses it as a URL: refused all the same
    "http://127.1/",
    "http://127.255.255.254/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/",  # NAT64
    "http://[2002:7f00:1::]/",  # 6to4
    "http://localhost/",
    "http://LocalHost./",
    "http://api.localhost/",
    # unspecified
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    # private
    "http://10.0.0.1/",
    "http://167772161/",  # 10.0.0.1
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://[::ffff:192.168.1.1]/",
    "http://[fd00::1]/",
    "http://[fc00::1]/",
    # link-local and cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # 169.254.169.254
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://169.254.170.2/",
    "http://168.63.129.16/",
    "http://100.100.100.200/",
    "http://192.0.0.192/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://[fe80::1]/",
    # shared (CGNAT), multicast, broadcast, reserved, documentation, benchmarking, Teredo
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://198.51.100.1/",
    "http://[2001:db8::1]/",
    "http://198.18.0.1/",
    "http://[2001::1]/",
    "http://[fec0::1]/",
    # not http(s)
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://example.com/",
    "dict://example.com:11211/",
    "redis://example.com:6379/",
    "//example.com/",
    "not a url",
]


@dataclass
class ScriptedResolver:
    """Answers names from a script (one answer per call, the last repeated); records calls."""

    answers: list[list[str]]
    calls: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [ipaddress.ip_address(a) for a in answer]


def egress(allow: tuple[str, ...] = (), resolver: ScriptedResolver | None = None) -> Egress:
    resolver = resolver or ScriptedResolver([["93.184.215.14"]])
    return Egress(EgressPolicy.parse(allow, resolver))


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_each_refused_form_is_refused_before_any_socket_or_lookup(url: str) -> None:
    resolver = ScriptedResolver([["93.184.215.14"]])
    client = egress(resolver=resolver)
    with network_log() as log, pytest.raises(EgressRefused):
        await client.request("GET", url, max_bytes=1024)
    await client.aclose()
    assert log.connects == []
    assert resolver.calls == []  # literal addresses and forbidden names never reach DNS


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["10.1.2.3"],
        ["169.254.169.254"],
        ["::ffff:169.254.169.254"],
        ["fd00:ec2::254"],
        ["93.184.215.14", "10.0.0.1"],  # one private answer among public ones refuses the name
    ],
)
async def test_a_name_resolving_to_a_refused_address_is_refused_before_connecting(
    answer: list[str],
) -> None:
    resolver = ScriptedResolver([answer])
    client = egress(resolver=resolver)
    with network_log() as log, pytest.raises(EgressRefused, match="resolves to"):
        await client.request("GET", "https://innocent.example/", max_bytes=1024)
    await client.aclose()
    assert resolver.calls == ["innocent.example"]
    assert log.connects == []


@pytest.mark.parametrize("header", ["Host", "host", "Transfer-Encoding", "Content-Length"])
async def test_headers_that_steer_the_request_are_refused(
    header: str, loopback_server: str
) -> None:
    client = egress(("127.0.0.1/32",))
    with network_log() as log, pytest.raises(EgressRefused, match="header"):
        await client.request(
            "GET", f"http://{loopback_server}/ok", headers={header: "evil"}, max_bytes=1024
        )
    await client.aclose()
    assert log.connects == []


async def test_an_allowed_loopback_server_is_reached(loopback_server: str) -> None:
    client = egress(("127.0.0.1/32",))
    response = await client.request("GET", f"http://{loopback_server}/ok", max_bytes=1024)
    await client.aclose()
    assert (response.status, httpx.Response(200, content=response.content).json()) == (
        200,
        {"host": loopback_server},
    )


async def test_the_connection_goes_to_the_address_that_was_checked(loopback_server: str) -> None:
    """DNS rebinding: the name answers an allowed address, then a private one. The first request
    connects to the checked address (its name in the Host header), looked up once; the second is
    refused before connecting."""
    port = int(loopback_server.rsplit(":", 1)[1])
    resolver = ScriptedResolver([["127.0.0.1"], ["10.0.0.1"]])
    first, second = egress(("127.0.0.1/32",), resolver), egress(("127.0.0.1/32",), resolver)
    with network_log() as log:
        response = await first.request("GET", f"http://rebind.test:{port}/ok", max_bytes=1024)
        with pytest.raises(EgressRefused, match=r"10\.0\.0\.1"):
            await second.request("GET", f"http://rebind.test:{port}/ok", max_bytes=1024)
    await first.aclose()
    await second.aclose()
    assert response.status == 200
    assert httpx.Response(200, content=response.content).json() == {"host": f"rebind.test:{port}"}
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert log.connects == [("127.0.0.1", port)]


async def test_a_redirect_to_a_refused_address_is_refused(loopback_server: str) -> None:
    client = egress(("127.0.0.1/32",))
    port = int(loopback_server.rsplit(":", 1)[1])
    to_metadata = f"http://{loopback_server}/redirect?to=http://169.254.169.254/latest/meta-data/"
    with network_log() as log:
        with pytest.raises(EgressRefused, match="metadata"):
            await client.request("GET", to_metadata, max_bytes=1024, follow_redirects=True)
        to_file = f"http://{loopback_server}/redirect?to=file:///etc/passwd"
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.request("GET", to_file, max_bytes=1024, follow_redirects=True)
        # without following (a flow's http_request), the redirect itself is the answer
        unfollowed = await client.request("GET", to_metadata, max_bytes=1024)
    followed = await client.request(
        "GET", f"http://{loopback_server}/redirect?to=/ok", max_bytes=1024, follow_redirects=True
    )
    await client.aclose()
    assert {host for host, _ in log.connects} == {"127.0.0.1"}
    assert all(p == port for _, p in log.connects)
    assert unfollowed.status == 302
    assert followed.status == 200


async def test_a_response_over_the_size_cap_is_refused(loopback_server: str) -> None:
    client = egress(("127.0.0.1/32",))
    with pytest.raises(EgressRefused, match="larger than 1048576 bytes"):
        await client.request("GET", f"http://{loopback_server}/big", max_bytes=1024 * 1024)
    assert len(
        (await client.request("GET", f"http://{loopback_server}/big", max_bytes=4 << 20)).content
    )
    await client.aclose()


async def test_the_deadline_ends_a_request_that_does_not_answer(loopback_server: str) -> None:
    client = egress(("127.0.0.1/32",))
    with pytest.raises(httpx.TimeoutException):
        await client.request("GET", f"http://{loopback_server}/slow", deadline=0.2, max_bytes=1024)
    await client.aclose()


async def test_proxy_settings_in_the_environment_are_ignored(
    loopback_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect on our behalf, unchecked: the egress client never uses one."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    client = egress(("127.0.0.1/32",))
    response = await client.request("GET", f"http://{loopback_server}/ok", max_bytes=1024)
    await client.aclose()
    assert response.status == 200


def test_the_allow_list_setting() -> None:
    settings = load_settings(egress_allow="10.0.0.0/8, 127.0.0.1 ,crm.internal,[fd00::1]")
    policy = egress_policy(settings.egress_allowed)
    assert policy.check_url("http://10.9.8.7:8080/hook").host == "10.9.8.7"
    assert policy.check_url("http://crm.internal/api").host == "crm.internal"
    assert policy.check_url("http://[fd00::1]/").host == "fd00::1"
    assert policy.check_url("http://[::ffff:127.0.0.1]/").host == "::ffff:127.0.0.1"
    with pytest.raises(EgressRefused):
        policy.check_url("http://127.0.0.2/")
    with pytest.raises(EgressRefused):
        policy.check_url("http://172.16.0.1/")
    with pytest.raises(ConfigError, match="ZAPFLOW_EGRESS_ALLOW"):
        load_settings(egress_allow="10.0.0.0/8; rm -rf /")


@pytest.mark.parametrize(
    ("template", "known"),
    [
        ("https://api.example.com/x", "https://api.example.com/x"),
        ("https://api.example.com/users/{{id}}", "https://api.example.com/"),
        ("http://127.0.0.1:6379/{{x}}", "http://127.0.0.1:6379/"),
        ("http://{{host}}/x", None),
        ("{{url}}", None),
        ("http://api.example.com{{path}}", None),
    ],
)
def test_what_a_url_template_fixes_before_a_run(template: str, known: str | None) -> None:
    assert static_url(template) == known
