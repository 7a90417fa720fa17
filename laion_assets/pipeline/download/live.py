"""Live HTTP fetching of image URLs, done as a careful crawler does.

URLs come from crawled pages, so everything here treats them as hostile: every hop's URL is
re-validated, every address is checked by `netsafety` (IP literals before connecting, names
in the resolver aiohttp connects through), bodies are capped while streaming, and each host
gets a bounded number of concurrent requests plus a shared backoff after 429/503.

Bodies are returned as received (after any HTTP content coding); decoding and validating the
image happens elsewhere.

`LiveFetchResult.reason` is None on success, else one of:

- ``http_<code>``: the final response was not 2xx (e.g. ``http_404``; 3xx without Location)
- ``timeout``: connect, read (between bytes) or total timeout
- ``too_large``: Content-Length or the streamed body exceeded ``max_bytes``
- ``redirect_loop``: a redirect led back to a URL already visited in this chain
- ``too_many_redirects``: more than ``max_redirects`` redirects
- ``blocked_address``: the host is or resolves only to addresses the policy refuses
- ``blocked_port``: a port reserved for non-web services (the Fetch standard's bad ports)
- ``x_robots_tag``: the final response's X-Robots-Tag forbids this use
- ``dns_error``: the host name did not resolve
- ``tls_error``: TLS handshake or certificate failure
- ``connection_error``: refused, reset or dropped connection, truncated body
- ``invalid_response``: the server's reply is not valid HTTP
- ``invalid_url``: unparsable URL, bad host, credentials in the URL, bad redirect Location
- ``unsupported_scheme``: not http or https
- ``host_budget_exhausted``: the host's 429/503 backoff used up ``host_budget_seconds``; its
  remaining URLs end at once so that one throttling host cannot hold a shard for hours

`transient` is True for timeouts, connection errors, temporary DNS failures, HTTP 408, 429
and 5xx, and ``host_budget_exhausted``; the first ones are retried up to ``retries`` times
within the run, and all of them in the download stage's next run.

Each call (one shard) gives every host a budget of backoff time: waits imposed by its 429
and 503 answers (Retry-After, else exponential backoff) are added up, and a wait that would
take the sum past ``host_budget_seconds`` exhausts the host instead. Other hosts proceed
meanwhile: only the throttled host's requests wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import re
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from laion_assets.pipeline.download.netsafety import (
    AddressPolicy,
    BlockedAddress,
    InvalidHost,
    SafeResolver,
    check_host,
    check_port,
)

DEFAULT_USER_AGENT = (
    "laion-assets/0.1 (+https://github.com/laion-assets/laion-assets; dataset research crawler)"
)
_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HOST_BACKOFF_STATUSES = frozenset({429, 503})
_CHUNK = 64 << 10
_MAX_URL_CHARS = 8192
_VALUED_DIRECTIVES = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)
_IMPLIED_DIRECTIVES = {"none": ("noindex", "nofollow")}
_SCOPED = re.compile(r"\s*([A-Za-z0-9_.*-]+)\s*:(.*)", re.S)
_PRODUCT = re.compile(r"[A-Za-z0-9_.*-]+")
_END: Any = object()


@dataclass(frozen=True)
class LiveFetchConfig:
    user_agent: str = DEFAULT_USER_AGENT
    max_concurrency: int = 64
    per_host_concurrency: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # between bytes
    total_timeout: float = 30.0  # network time for redirects and body, per attempt
    max_bytes: int = 16 << 20  # enforced while streaming
    max_redirects: int = 5
    respect_x_robots_tag: bool = True
    x_robots_blocking: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    retries: int = 2  # for 408, 429, 5xx, timeouts, connection errors
    backoff_seconds: float = 1.0  # base of exponential backoff; Retry-After overrides
    max_retry_after: float = 60.0  # cap on any wait, Retry-After included
    host_budget_seconds: float = 300.0  # a host's 429/503 backoff per call (shard), in total
    allowed_networks: tuple[str, ...] = ()  # CIDRs exempt from the address policy

    def __post_init__(self) -> None:
        counts = (self.max_concurrency, self.per_host_concurrency)
        times = (self.connect_timeout, self.read_timeout, self.total_timeout)
        if min(counts) < 1 or min(times) <= 0:
            raise ValueError("concurrency limits must be >= 1 and timeouts > 0")
        if min(self.max_bytes, self.max_redirects, self.retries, self.host_budget_seconds) < 0:
            raise ValueError("max_bytes, max_redirects, retries and host_budget_seconds must "
                             "be >= 0")
        AddressPolicy(self.allowed_networks)  # fails early on a malformed CIDR

    @property
    def robots_token(self) -> str:
        """The bot name X-Robots-Tag directives address: the User-Agent's product token."""
        match = _PRODUCT.match(self.user_agent)
        return match[0].lower() if match else ""


@dataclass(frozen=True)
class LiveFetchResult:
    url: str
    ok: bool
    reason: str | None  # None when ok, else one of the reasons in the module docstring
    detail: str  # human-readable explanation of the reason
    http_status: int | None  # status of the last response received, if any
    final_url: str  # the last URL fetched, or the redirect target that was refused
    content_type: str | None  # Content-Type of the final response as sent, failures included
    body: bytes  # empty unless ok
    transient: bool  # worth retrying in a later run
    fetched_at: datetime  # UTC, when the result was settled
    attempts: int


# -- header parsing ---------------------------------------------------------------------------


def x_robots_block(values: Iterable[str], bot: str, blocking: Iterable[str]) -> str | None:
    """The first X-Robots-Tag directive that applies to `bot` and is in `blocking`, else None.

    Each header value is a comma list; ``name: directive`` scopes it and the directives after
    it (in the same value) to one bot. Unscoped and ``*`` directives apply to every bot.
    ``none`` implies ``noindex, nofollow``. The result names the directive as sent.
    """
    wanted = {directive.lower() for directive in blocking}
    bot = bot.lower()
    for value in values:
        scope: str | None = None
        for item in value.split(","):
            scoped = _SCOPED.fullmatch(item)
            if scoped and scoped[1].lower() not in _VALUED_DIRECTIVES:
                scope, item = scoped[1].lower(), scoped[2]
            directive = item.strip().lower()
            implied = _IMPLIED_DIRECTIVES.get(directive, ())
            applies = scope in (None, "*", bot)
            if applies and (directive in wanted or wanted.intersection(implied)):
                return directive if scope is None else f"{scope}: {directive}"
    return None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date), None if unusable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# -- failures ---------------------------------------------------------------------------------


class _Failure(Exception):
    """Why a fetch attempt ended without a body."""

    def __init__(
        self, reason: str, detail: str, *, transient: bool = False, status: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.status = status
        self.content_type: str | None = None  # of the response that failed, if any


@dataclass
class _Outcome:
    """One attempt's end: a body, or a failure; `url` is the last URL reached or refused."""

    url: str
    status: int | None
    reason: str | None = None
    detail: str = ""
    transient: bool = False
    content_type: str | None = None
    body: bytes = b""

    @classmethod
    def failed(cls, url: str, failure: _Failure, status: int | None) -> _Outcome:
        return cls(url, failure.status or status, failure.reason, failure.detail,
                   failure.transient, failure.content_type)

    def result(self, url: str, attempts: int) -> LiveFetchResult:
        ok = self.reason is None
        return LiveFetchResult(
            url=url, ok=ok, reason=self.reason, detail=self.detail, http_status=self.status,
            final_url=self.url, content_type=self.content_type, body=self.body if ok else b"",
            transient=self.transient, fetched_at=datetime.now(UTC), attempts=attempts,
        )


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


def _dns_transient(error: OSError) -> bool:
    """Temporary resolver failures are worth retrying; "no such name" is not."""
    return getattr(error, "errno", None) in (socket.EAI_AGAIN, errno.ETIMEDOUT)


def _timeout_detail(exc: TimeoutError, config: LiveFetchConfig) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within {config.connect_timeout}s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"no data received for {config.read_timeout}s"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return str(exc) or "server timeout"
    return f"not complete within {config.total_timeout}s"


def _classify(exc: Exception, config: LiveFetchConfig) -> _Failure:
    """Map an aiohttp/OS exception onto a reason."""
    if isinstance(exc, TimeoutError):
        return _Failure("timeout", _timeout_detail(exc, config), transient=True)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, BlockedAddress):
            return _Failure("blocked_address", f"{exc.host}: {exc.os_error.reason}")
        return _Failure("dns_error", f"{exc.host}: {exc.os_error}",
                        transient=_dns_transient(exc.os_error))
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return _Failure("tls_error", str(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return _Failure("invalid_url", str(exc))
    if isinstance(exc, aiohttp.ClientResponseError):
        return _Failure("invalid_response", exc.message or type(exc).__name__)
    detail = str(exc) or type(exc).__name__
    return _Failure("connection_error", detail, transient=True)


# -- URLs -------------------------------------------------------------------------------------


def _check_url(url: URL, policy: AddressPolicy) -> URL:
    """`url` without its fragment, or _Failure if it may not be fetched."""
    if url.scheme not in ("http", "https"):
        raise _Failure("unsupported_scheme", f"scheme {url.scheme!r} in {str(url)[:200]}")
    if not url.raw_host:
        raise _Failure("invalid_url", f"no host in {str(url)[:200]}")
    if url.raw_user is not None or url.raw_password is not None:
        raise _Failure("invalid_url", "credentials in URL")
    if reason := check_port(url.port):
        raise _Failure("blocked_port", reason)
    try:
        reason = check_host(url.raw_host, policy)  # IDNA-encoded, as DNS will see it
    except InvalidHost as exc:
        raise _Failure("invalid_url", str(exc)) from None
    if reason:
        raise _Failure("blocked_address", reason)
    return url.with_fragment(None)


def _parse_url(raw: str, policy: AddressPolicy) -> URL:
    if not isinstance(raw, str) or len(raw) > _MAX_URL_CHARS:
        raise _Failure("invalid_url", "not a string of at most 8192 characters")
    try:
        url = URL(raw.strip())
    except (ValueError, TypeError) as exc:
        raise _Failure("invalid_url", str(exc)) from None
    return _check_url(url, policy)


def _redirect_target(base: URL, location: str, status: int) -> URL:
    try:
        return base.join(URL(location.strip()))
    except (ValueError, TypeError) as exc:
        raise _Failure("invalid_url", f"bad redirect Location: {exc}", status=status) from None


def host_key(url: str) -> str:
    """The per-host politeness key of a URL: its lower-cased host ('' if unparsable)."""
    try:
        return (URL(url).raw_host or "").lower()
    except (ValueError, TypeError):
        return ""


# -- scheduling -------------------------------------------------------------------------------


@dataclass
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


class _HostGate:
    """Per-host concurrency, backoff and backoff budget; idle slots are dropped."""

    def __init__(self, per_host: int, budget: float) -> None:
        self._per_host = per_host
        self._budget = budget
        self._slots: dict[str, _HostSlot] = {}
        self._until: dict[str, float] = {}
        self._spent: Counter[str] = Counter()  # backoff seconds imposed per host
        self._exhausted: set[str] = set()
        self._changed = asyncio.Event()  # set when a host is exhausted: sleepers re-check

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of `host`'s slots, after any backoff imposed on it has passed.

        Raises _Failure(host_budget_exhausted) once the host's budget is spent, waking any
        request that was waiting out its backoff.
        """
        self.check(host)
        entry = self._slots.setdefault(host, _HostSlot(asyncio.Semaphore(self._per_host)))
        entry.users += 1
        try:
            async with entry.semaphore:
                while (wait := self.wait_for(host)) > 0:
                    self.check(host)
                    changed = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
                self.check(host)
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._slots[host]

    def check(self, host: str, status: int | None = None) -> None:
        """Raise _Failure(host_budget_exhausted) if `host` has spent its backoff budget."""
        if host in self._exhausted:
            raise _Failure("host_budget_exhausted", f"{host} spent its {self._budget:g}s "
                           "budget waiting out 429/503 backoff; retried in the next run",
                           transient=True, status=status)

    def back_off(self, host: str, seconds: float) -> None:
        """Make every request to `host` wait `seconds` from now, or exhaust its budget."""
        now = time.monotonic()
        current = max(self._until.get(host, now), now)
        added = max(now + seconds - current, 0.0)
        if self._spent[host] + added > self._budget:
            self.exhaust(host)
            return
        self._spent[host] += added
        self._until[host] = current + added

    def exhaust(self, host: str) -> None:
        """End every pending and waiting request to `host` (its budget is spent)."""
        self._exhausted.add(host)
        self._until.pop(host, None)
        self._changed.set()
        self._changed = asyncio.Event()

    def exhausted(self, host: str) -> bool:
        return host in self._exhausted

    def wait_for(self, host: str) -> float:
        """Seconds until `host` may be contacted again (0 when it may now)."""
        until = self._until.get(host)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._until[host]
        return max(left, 0.0)


class _Frontier:
    """A bounded buffer of pending URLs grouped by host; hands out URLs whose host has room.

    At most `capacity` URLs are read ahead from the input, so a million-URL iterable costs
    memory for `capacity` strings, and one busy host does not block the others.
    """

    def __init__(self, urls: Iterable[str], capacity: int, per_host: int, gate: _HostGate):
        self._source: Iterator[str] = iter(urls)
        self._capacity = capacity
        self._per_host = per_host
        self._gate = gate
        self._pending: dict[str, deque[str]] = {}
        self._size = 0
        self._active: Counter[str] = Counter()
        self._exhausted = False

    def _fill(self) -> None:
        while self._size < self._capacity and not self._exhausted:
            url = next(self._source, _END)
            if url is _END:
                self._exhausted = True
                return
            self._pending.setdefault(host_key(url), deque()).append(url)
            self._size += 1

    def _ready(self, host: str) -> bool:
        return self._active[host] < self._per_host and self._gate.wait_for(host) <= 0

    def take(self) -> tuple[str, str] | None:
        """(host, url) for a host with a free slot and no backoff, or None."""
        self._fill()
        host = next((h for h in self._pending if self._ready(h)), None)
        if host is None:
            return None
        queue = self._pending.pop(host)
        url = queue.popleft()
        if queue:
            self._pending[host] = queue  # re-inserted last: hosts take turns
        self._size -= 1
        self._active[host] += 1
        return host, url

    def done(self, host: str) -> None:
        self._active[host] -= 1
        if not self._active[host]:
            del self._active[host]

    @property
    def drained(self) -> bool:
        return self._exhausted and not self._size

    def next_ready_in(self) -> float | None:
        """Seconds until a backed-off pending host may be contacted, None if none waits."""
        waits = [self._gate.wait_for(h) for h in self._pending if self._active[h] < self._per_host]
        return min((w for w in waits if w > 0), default=None)


class _Budget:
    """The time left for one attempt; only time spent on the network is charged."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    @asynccontextmanager
    async def spend(self) -> AsyncIterator[None]:
        if self.left <= 0:
            raise TimeoutError
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.left):
                yield
        finally:
            self.left -= time.monotonic() - start


@dataclass(frozen=True)
class _Redirect:
    status: int
    target: URL


# -- fetching ---------------------------------------------------------------------------------


@dataclass
class _Fetcher:
    config: LiveFetchConfig
    session: aiohttp.ClientSession
    policy: AddressPolicy
    gate: _HostGate = field(init=False)
    connections: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.gate = _HostGate(self.config.per_host_concurrency, self.config.host_budget_seconds)
        self.connections = asyncio.Semaphore(self.config.max_concurrency)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff before attempt `attempt + 1`, capped by max_retry_after."""
        return min(self.config.backoff_seconds * 2 ** (attempt - 1), self.config.max_retry_after)

    async def run(self, urls: Iterable[str]) -> AsyncIterator[LiveFetchResult]:
        """Fetch every URL once; results in completion order."""
        limit = 2 * self.config.max_concurrency  # tasks sleeping before a retry hold no slot
        frontier = _Frontier(urls, 4 * limit, self.config.per_host_concurrency, self.gate)
        running: dict[asyncio.Task[LiveFetchResult], str] = {}
        try:
            while True:
                while len(running) < limit and (item := frontier.take()) is not None:
                    running[asyncio.create_task(self.fetch(item[1]))] = item[0]
                if not running and frontier.drained:
                    return
                wait = frontier.next_ready_in()
                if not running:
                    await asyncio.sleep(wait or 0.01)
                    continue
                done, _ = await asyncio.wait(
                    running, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    frontier.done(running.pop(task))
                    yield task.result()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def fetch(self, url: str) -> LiveFetchResult:
        """One URL, retried while the failure is transient and retries remain."""
        for attempt in itertools.count(1):
            outcome = await self.attempt(url, attempt)
            if outcome.reason is None or not outcome.transient or attempt > self.config.retries:
                return outcome.result(url, attempt)
            if outcome.reason == "host_budget_exhausted":
                return outcome.result(url, attempt)
            if outcome.status not in _HOST_BACKOFF_STATUSES:  # those wait in the host gate
                await asyncio.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    async def attempt(self, raw: str, attempt: int) -> _Outcome:
        """Fetch `raw`, following redirects, within one total-timeout budget."""
        current, status = raw, None
        try:
            url = _parse_url(raw, self.policy)
            current, seen, budget = str(url), {url}, _Budget(self.config.total_timeout)
            for hops in itertools.count():
                step = await self.hop(url, attempt, budget)
                if isinstance(step, _Outcome):
                    return step
                status, current = step.status, str(step.target)
                url = self.follow(step, seen, hops)
        except _Failure as failure:
            return _Outcome.failed(current, failure, status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return _Outcome.failed(current, _classify(exc, self.config), status)
        raise AssertionError("unreachable")

    def follow(self, redirect: _Redirect, seen: set[URL], hops: int) -> URL:
        """The next URL to fetch, after checking it like the first one."""
        target = _check_url(redirect.target, self.policy)
        if target in seen:
            raise _Failure("redirect_loop", f"redirected back to {str(target)[:200]}")
        if hops >= self.config.max_redirects:
            raise _Failure("too_many_redirects", f"more than {self.config.max_redirects}")
        seen.add(target)
        return target

    async def hop(self, url: URL, attempt: int, budget: _Budget) -> _Outcome | _Redirect:
        """One request: a redirect to follow, or the final outcome."""
        host = (url.raw_host or "").lower()
        async with (
            self.gate.slot(host),
            self.connections,
            budget.spend(),
            self.session.get(url, allow_redirects=False) as resp,
        ):
            location = resp.headers.get("Location")
            if resp.status in _REDIRECTS and location is not None:
                return _Redirect(resp.status, _redirect_target(url, location, resp.status))
            if resp.status in _HOST_BACKOFF_STATUSES:
                self.gate.back_off(host, self.retry_delay(resp.headers, attempt))
                self.gate.check(host, resp.status)
            return await self.final(resp, url)

    def retry_delay(self, headers: CIMultiDictProxy[str], attempt: int) -> float:
        """Retry-After when usable, else exponential backoff; capped by max_retry_after."""
        delay = retry_after_seconds(headers.get("Retry-After"))
        delay = self.backoff(attempt) if delay is None else delay
        return min(delay, self.config.max_retry_after)

    async def final(self, resp: aiohttp.ClientResponse, url: URL) -> _Outcome:
        """Check the last response of the chain and stream its body under the byte cap."""
        status, content_type = resp.status, resp.headers.get("Content-Type")
        try:
            if not 200 <= status <= 299:
                raise _Failure(f"http_{status}", resp.reason or "", status=status,
                               transient=_retryable_status(status))
            self.check_robots(resp.headers, status)
            body = await _read_capped(resp, self.config.max_bytes)
        except _Failure as failure:
            failure.content_type = content_type
            raise
        return _Outcome(str(url), status, content_type=content_type, body=body)

    def check_robots(self, headers: CIMultiDictProxy[str], status: int) -> None:
        if not self.config.respect_x_robots_tag:
            return
        values = headers.getall("X-Robots-Tag", [])
        hit = x_robots_block(values, self.config.robots_token, self.config.x_robots_blocking)
        if hit is not None:
            raise _Failure("x_robots_tag", f"X-Robots-Tag directive {hit!r}", status=status)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or too_large as soon as more than `limit` bytes are announced or arrive."""
    length = resp.content_length
    if length is not None and length > limit:
        resp.close()
        raise _Failure("too_large", f"Content-Length {length} exceeds {limit} bytes",
                       status=resp.status)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            resp.close()  # drop the connection rather than drain an endless body
            raise _Failure("too_large", f"body exceeds {limit} bytes", status=resp.status)
    return bytes(body)


@asynccontextmanager
async def _session(
    config: LiveFetchConfig, policy: AddressPolicy
) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that connects only through the policy-checking resolver."""
    resolver = SafeResolver(policy)
    connector = aiohttp.TCPConnector(
        resolver=resolver, limit=config.max_concurrency,
        limit_per_host=config.per_host_concurrency,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=config.connect_timeout, sock_connect=config.connect_timeout,
        sock_read=config.read_timeout,
    )
    headers = {"User-Agent": config.user_agent, "Accept": _ACCEPT, "Accept-Encoding": "identity"}
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers, trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            yield session
    finally:
        await resolver.close()


async def fetch_live(
    urls: Iterable[str], config: LiveFetchConfig
) -> AsyncIterator[LiveFetchResult]:
    """Fetch each URL exactly once; results in completion order.

    `urls` is read lazily (a bounded look-ahead), so it may be a generator over millions.
    """
    policy = AddressPolicy(config.allowed_networks)
    async with (
        _session(config, policy) as session,
        aclosing(_Fetcher(config, session, policy).run(urls)) as results,
    ):
        async for result in results:
            yield result


def fetch_live_sync(
    urls: Iterable[str], config: LiveFetchConfig, on_result: Callable[[LiveFetchResult], None]
) -> None:
    """`fetch_live` on its own event loop, calling `on_result` for each result."""

    async def main() -> None:
        async with aclosing(fetch_live(urls, config)) as results:
            async for result in results:
                on_result(result)

    asyncio.run(main())
