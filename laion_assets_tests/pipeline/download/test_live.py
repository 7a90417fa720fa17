"""Live fetching against a real HTTP server on 127.0.0.1.

Every test runs under `connects`, which records each outgoing TCP connect and refuses any
to a non-loopback address, so a policy failure shows up as a recorded attempt rather than as
traffic leaving the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from PIL import Image

from laion_assets.pipeline.download.live import (
    LiveFetchConfig,
    LiveFetchResult,
    fetch_live,
    fetch_live_sync,
    retry_after_seconds,
    x_robots_block,
)
from laion_assets_tests import http_server
from laion_assets_tests.http_server import EndlessBody, LoopbackServer, slow, static

loopback_server = http_server.loopback_server  # the shared fixture

LOCAL = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), backoff_seconds=0.01)


@pytest.fixture(autouse=True)
def connects(monkeypatch) -> list[tuple]:
    """Every address a socket in this process connects to; non-loopback ones are refused."""
    seen: list[tuple] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address) -> None:
        if isinstance(address, tuple):
            seen.append(address)
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                raise ConnectionRefusedError(f"test refuses to connect to {address}")

    def connect(sock, address):
        guard(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        guard(address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return seen


def fetch(urls: list[str], config: LiveFetchConfig = LOCAL) -> list[LiveFetchResult]:
    results: list[LiveFetchResult] = []
    fetch_live_sync(urls, config, results.append)
    return results


def fetch_one(url: str, config: LiveFetchConfig = LOCAL) -> LiveFetchResult:
    [result] = fetch([url], config)
    assert result.url == url
    assert result.fetched_at.tzinfo is not None
    return result


def image_bytes(fmt: str) -> bytes:
    """A small image in `fmt`; GIF is animated (3 frames)."""
    buf = BytesIO()
    if fmt == "GIF":
        colors = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
        frames = [Image.new("RGB", (24, 16), color) for color in colors]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    else:
        Image.new("RGB", (32, 24), (200, 30, 60)).save(buf, fmt)
    return buf.getvalue()


# -- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_images_are_fetched_byte_for_byte(loopback_server, fmt, mime):
    data = image_bytes(fmt)
    if fmt == "GIF":
        assert Image.open(BytesIO(data)).n_frames == 3
    url = loopback_server.respond("/img", data, content_type=mime)
    result = fetch_one(url)
    assert (result.ok, result.reason, result.http_status) == (True, None, 200)
    assert result.body == data
    assert result.content_type == mime
    assert (result.final_url, result.attempts, result.transient) == (url, 1, False)


def test_html_served_as_jpeg_is_returned_for_the_decoder_to_reject(loopback_server):
    html = b"<!doctype html><html><body>Not an image</body></html>"
    result = fetch_one(loopback_server.respond("/fake.jpg", html, content_type="image/jpeg"))
    assert result.ok
    assert result.content_type == "image/jpeg"
    assert result.body == html


def test_decompression_bomb_is_fetched_and_left_to_the_decoder(loopback_server):
    buf = BytesIO()
    Image.new("1", (14000, 14000)).save(buf, "PNG")  # 196 Mpx in ~24 KB
    bomb = buf.getvalue()
    result = fetch_one(loopback_server.respond("/bomb.png", bomb, content_type="image/png"))
    assert result.ok and result.body == bomb
    with pytest.raises(Image.DecompressionBombError):  # what the decoding stage will meet
        Image.open(BytesIO(result.body))


def test_user_agent_is_the_configured_one(loopback_server):
    url = loopback_server.respond("/ua", b"x")
    fetch_one(url)
    config = LiveFetchConfig(user_agent="other-bot/2.0", allowed_networks=("127.0.0.1/32",))
    fetch_one(url, config)
    agents = [r.headers["User-Agent"] for r in loopback_server.hits("/ua")]
    assert agents == [LiveFetchConfig().user_agent, "other-bot/2.0"]


def test_redirects_are_followed_to_the_final_url(loopback_server):
    data = image_bytes("PNG")
    target = loopback_server.respond("/final.png", data, content_type="image/png")
    loopback_server.redirect("/b", target, status=301)
    start = loopback_server.redirect("/a", "/b?x=1#frag", status=307)
    loopback_server.redirect("/b?x=1", "final.png", status=308)
    result = fetch_one(start)
    assert result.ok and result.body == data
    assert result.final_url == target


# -- HTTP errors and retries ------------------------------------------------------------------


def test_404_is_final(loopback_server):
    result = fetch_one(loopback_server.respond("/gone", b"nope", status=404,
                                               content_type="text/html"))
    assert (result.ok, result.reason, result.http_status) == (False, "http_404", 404)
    assert result.content_type.startswith("text/html")
    assert not result.transient and result.body == b""
    assert result.attempts == 1


def test_500_is_retried_and_succeeds(loopback_server):
    data = image_bytes("JPEG")
    url = loopback_server.sequence(
        "/flaky", [static(b"oops", status=500), static(data, content_type="image/jpeg")]
    )
    result = fetch_one(url)
    assert result.ok and result.body == data
    assert result.attempts == 2
    assert len(loopback_server.hits("/flaky")) == 2


def test_persistent_5xx_gives_up_as_transient(loopback_server):
    url = loopback_server.respond("/down", status=502)
    result = fetch_one(url, LiveFetchConfig(allowed_networks=("127.0.0.0/8",), retries=1,
                                            backoff_seconds=0.01))
    assert (result.reason, result.http_status, result.transient) == ("http_502", 502, True)
    assert result.attempts == 2


def test_429_waits_for_retry_after(loopback_server):
    data = image_bytes("PNG")
    url = loopback_server.sequence("/busy", [
        static(status=429, headers={"Retry-After": "1"}),
        static(data, content_type="image/png"),
    ])
    result = fetch_one(url)
    assert result.ok and result.body == data and result.attempts == 2
    first, second = loopback_server.hits("/busy")
    assert second.at - first.at >= 1.0


def test_retry_after_parsing():
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0
    assert retry_after_seconds((now + timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S GMT"),
                               now) == 5.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("-5") is None


# -- limits -----------------------------------------------------------------------------------


def test_slow_server_times_out(loopback_server):
    url = loopback_server.route("/slow", slow(5.0))
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), read_timeout=0.3, retries=0)
    result = fetch_one(url, config)
    assert (result.ok, result.reason, result.transient) == (False, "timeout", True)
    assert "0.3s" in result.detail


def test_total_timeout_covers_the_whole_request(loopback_server):
    url = loopback_server.route("/slow", slow(5.0))
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), total_timeout=0.3, retries=0)
    result = fetch_one(url, config)
    assert (result.reason, result.transient) == ("timeout", True)


def test_endless_body_is_cut_off_at_max_bytes(loopback_server):
    endless = EndlessBody()
    url = loopback_server.route("/endless", endless)
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), max_bytes=256 << 10)
    result = fetch_one(url, config)
    assert (result.ok, result.reason, result.http_status) == (False, "too_large", 200)
    assert not result.transient and result.body == b"" and result.attempts == 1
    assert endless.stopped.wait(5), "the server should see the connection closed"
    assert endless.bytes_sent < 64 << 20  # the cap plus socket buffers, not an endless read


def test_announced_length_over_the_cap_is_refused_before_reading(loopback_server):
    url = loopback_server.respond("/big", b"x" * 4096)
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), max_bytes=1024)
    result = fetch_one(url, config)
    assert result.reason == "too_large" and "Content-Length 4096" in result.detail


def test_body_at_exactly_max_bytes_is_accepted(loopback_server):
    url = loopback_server.respond("/exact", b"x" * 1024)
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), max_bytes=1024)
    assert fetch_one(url, config).ok


# -- redirects --------------------------------------------------------------------------------


def test_redirect_loop(loopback_server):
    start = loopback_server.redirect("/a", "/b")
    loopback_server.redirect("/b", "/a")
    result = fetch_one(start)
    assert (result.reason, result.http_status, result.transient) == ("redirect_loop", 302, False)
    assert result.final_url == start
    assert len(loopback_server.requests) == 2


def _chain(server: LoopbackServer, hops: int) -> str:
    """A chain of `hops` redirects ending at an image; returns its first URL."""
    server.respond(f"/r{hops}", b"img", content_type="image/png")
    for i in range(hops):
        server.redirect(f"/r{i}", f"/r{i + 1}")
    return server.url("/r0")


def test_max_redirects_exceeded(loopback_server):
    result = fetch_one(_chain(loopback_server, 6))
    assert (result.reason, result.http_status) == ("too_many_redirects", 302)
    assert len(loopback_server.requests) == 6


def test_max_redirects_reached_is_fine(loopback_server):
    result = fetch_one(_chain(loopback_server, 5))
    assert result.ok and result.final_url == loopback_server.url("/r5")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.0.0.1/x.jpg", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
        ("http://[::1]:{port}/x.jpg", "loopback address ::1"),
        ("http://[::ffff:192.168.0.1]/x.jpg", "private address 192.168.0.1"),
        ("https://100.64.0.7/x.jpg", "carrier-grade NAT address 100.64.0.7"),
    ],
)
def test_redirect_to_a_private_address_is_refused_without_connecting(
    loopback_server, connects, target, reason
):
    start = loopback_server.redirect("/r", target.format(port=loopback_server.port))
    result = fetch_one(start)
    assert (result.ok, result.reason, result.http_status) == (False, "blocked_address", 302)
    assert reason in result.detail
    assert not result.transient
    assert set(connects) == {("127.0.0.1", loopback_server.port)}


def test_redirect_to_a_name_resolving_to_a_refused_address(connects):
    """The resolver, not the literal check, refuses this one: `localhost` is 127.0.0.1."""
    try:
        server = LoopbackServer("::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        start = server.redirect("/r", f"http://localhost:{server.port}/x")
        result = fetch_one(start, LiveFetchConfig(allowed_networks=("::1/128",)))
    finally:
        server.stop()
    assert result.reason == "blocked_address"
    assert "localhost" in result.detail and "loopback address 127.0.0.1" in result.detail
    assert result.final_url == f"http://localhost:{server.port}/x"
    assert {a[0] for a in connects} == {"::1"}


def test_redirect_to_another_scheme_is_refused(loopback_server):
    start = loopback_server.redirect("/r", "file:///etc/passwd")
    result = fetch_one(start)
    assert (result.reason, result.final_url) == ("unsupported_scheme", "file:///etc/passwd")


# -- address policy at the first hop ----------------------------------------------------------


def test_default_policy_refuses_loopback_literal(loopback_server, connects):
    result = fetch_one(loopback_server.respond("/img", b"x"), LiveFetchConfig())
    assert (result.reason, result.http_status) == ("blocked_address", None)
    assert "loopback address 127.0.0.1" in result.detail
    assert connects == [] and loopback_server.requests == []


def test_default_policy_refuses_a_name_resolving_to_loopback(loopback_server, connects):
    loopback_server.respond("/img", b"x")
    result = fetch_one(f"http://localhost:{loopback_server.port}/img", LiveFetchConfig())
    assert result.reason == "blocked_address"
    assert result.detail == "localhost: loopback address 127.0.0.1"
    assert connects == []


@pytest.mark.parametrize(
    ("host", "detail"),
    [
        ("①②⑦.0.0.1", "loopback address 127.0.0.1"),  # IDNA maps these digits to ASCII
        ("127。0。0。1", "loopback address 127.0.0.1"),
        ("ｌｏｃａｌｈｏｓｔ", "localhost: loopback address 127.0.0.1"),  # via the resolver
    ],
)
def test_unicode_hosts_are_normalised_before_the_policy(loopback_server, connects, host, detail):
    loopback_server.respond("/img", b"x")
    result = fetch_one(f"http://{host}:{loopback_server.port}/img", LiveFetchConfig())
    assert (result.reason, result.detail) == ("blocked_address", detail)
    assert connects == [] and loopback_server.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.jpg", "unsupported_scheme"),
        ("data:image/png;base64,AAAA", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("http:///nohost.jpg", "invalid_url"),
        ("http://example.com:99999/a.jpg", "invalid_url"),
        ("http://user:secret@example.com/a.jpg", "invalid_url"),
        ("http://2130706433/a.jpg", "invalid_url"),
        ("http://0x7f.1/a.jpg", "invalid_url"),
        ("http://exa mple.com/a.jpg", "invalid_url"),
        ("http://example.com:25/a.jpg", "blocked_port"),
        ("http://0.0.0.0/a.jpg", "blocked_address"),
    ],
)
def test_unfetchable_urls_are_refused_before_connecting(connects, url, reason):
    result = fetch_one(url)
    assert (result.reason, result.transient, result.http_status) == (reason, False, None)
    assert connects == []


# -- X-Robots-Tag -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "blocked"),
    [
        ("noai", True),
        ("noarchive, noimageai", True),
        ("laion-assets: noindex", True),
        ("*: noai", True),
        ("none", True),
        ("otherbot: noai", False),
        ("otherbot: noindex, noai", False),
        ("noarchive, unavailable_after: 25 Jun 2030 15:00:00 PST", False),
        ("max-image-preview: large", False),
    ],
)
def test_x_robots_tag(loopback_server, header, blocked):
    url = loopback_server.respond("/img", b"img", content_type="image/png",
                                  headers={"X-Robots-Tag": header})
    result = fetch_one(url)
    assert result.ok is not blocked
    if blocked:
        assert (result.reason, result.http_status, result.body) == ("x_robots_tag", 200, b"")
        assert "X-Robots-Tag directive" in result.detail


def test_x_robots_tag_ignored_when_configured_so(loopback_server):
    url = loopback_server.respond("/img", b"img", headers={"X-Robots-Tag": "noai"})
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), respect_x_robots_tag=False)
    assert fetch_one(url, config).ok


def test_x_robots_block_reads_repeated_headers_and_bot_scopes():
    blocking = ("noai", "noindex")
    assert x_robots_block(["otherbot: noai", "laion-assets: noindex"], "laion-assets",
                          blocking) == "laion-assets: noindex"
    assert x_robots_block(["googlebot: noai, laion-assets: nofollow"], "laion-assets",
                          blocking) is None
    assert x_robots_block(["LAION-Assets: NOAI"], "laion-assets", blocking) == "laion-assets: noai"
    assert x_robots_block([], "laion-assets", blocking) is None


# -- scheduling -------------------------------------------------------------------------------


def test_per_host_concurrency_is_respected(loopback_server):
    url = loopback_server.route("/slowish", slow(0.2, b"img"))
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), max_concurrency=8,
                             per_host_concurrency=2)
    results = fetch([f"{url}?i={i}" for i in range(8)], config)
    assert all(r.ok for r in results)
    assert loopback_server.max_in_flight == 2


def test_each_url_once_in_completion_order(loopback_server):
    slow_url = loopback_server.route("/late", slow(0.5, b"late"))
    fast = [loopback_server.respond(f"/f{i}", b"fast") for i in range(5)]
    urls = [slow_url, *fast, "ftp://x/y", fast[0]]

    async def main() -> list[LiveFetchResult]:
        return [r async for r in fetch_live(urls, LOCAL)]

    results = asyncio.run(main())
    assert sorted(r.url for r in results) == sorted(urls)
    assert results[-1].url == slow_url


def test_input_is_read_lazily():
    pulled = []
    first_seen_at: list[int] = []

    def urls():
        for i in range(10_000):
            pulled.append(i)
            yield f"ftp://example.com/{i}"

    def on_result(result: LiveFetchResult) -> None:
        if not first_seen_at:
            first_seen_at.append(len(pulled))

    fetch_live_sync(urls(), LiveFetchConfig(max_concurrency=2), on_result)
    assert len(pulled) == 10_000
    assert first_seen_at[0] <= 100  # a bounded look-ahead, not the whole input


def test_stopping_early_cancels_outstanding_fetches(loopback_server):
    slow_url = loopback_server.route("/late", slow(5.0))
    fast_url = loopback_server.respond("/fast", b"x")

    async def main() -> LiveFetchResult:
        async for result in fetch_live([slow_url, fast_url], LOCAL):
            return result
        raise AssertionError("no result")

    assert asyncio.run(asyncio.wait_for(main(), 3)).url == fast_url


def test_results_carry_a_route_the_server_ignored_as_404(loopback_server):
    result = fetch_one(loopback_server.url("/never-registered"))
    assert result.reason == "http_404"


def test_config_is_validated():
    with pytest.raises(ValueError):
        LiveFetchConfig(max_concurrency=0)
    with pytest.raises(ValueError):
        LiveFetchConfig(allowed_networks=("not-a-network",))
    with pytest.raises(ValueError, match="host_budget_seconds"):
        LiveFetchConfig(host_budget_seconds=-1)


# -- a throttling host's budget ---------------------------------------------------------------


def test_a_throttling_host_ends_within_its_budget_while_others_proceed(loopback_server):
    """127.0.0.2 answers 429 (Retry-After: 1) forever: its URLs end as host_budget_exhausted
    once the next wait would take its backoff past 3 s, instead of retrying for minutes;
    127.0.0.1 completes meanwhile."""
    data = image_bytes("PNG")
    fast = loopback_server.route("/img", slow(0.05, data))
    with http_server.LoopbackServer("127.0.0.2") as throttling:
        busy = throttling.route("/img", static(status=429, headers={"Retry-After": "1"}))
        config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), per_host_concurrency=2,
                                 retries=10, host_budget_seconds=3.0)
        urls = [f"{busy}?i={i}" for i in range(40)] + [f"{fast}?i={i}" for i in range(10)]
        arrivals: list[tuple[float, LiveFetchResult]] = []
        start = time.monotonic()
        fetch_live_sync(urls, config, lambda r: arrivals.append((time.monotonic(), r)))
        elapsed = time.monotonic() - start
        requests_to_busy = len(throttling.requests)
    slow_host = [(t, r) for t, r in arrivals if r.url.startswith(busy)]
    fast_host = [(t, r) for t, r in arrivals if r.url.startswith(fast)]
    assert len(slow_host) == 40 and len(fast_host) == 10
    assert all(r.ok and r.body == data for _, r in fast_host)
    assert {(r.reason, r.transient) for _, r in slow_host} == {("host_budget_exhausted", True)}
    assert "127.0.0.2 spent its 3s budget" in slow_host[0][1].detail
    assert max(t for t, _ in fast_host) < min(t for t, _ in slow_host)  # not held behind it
    assert elapsed < 3.0 + 1.5  # the budget, not 40 URLs x 10 retries of Retry-After
    assert 4 <= requests_to_busy <= 8  # it waited and retried, two at a time, then stopped
