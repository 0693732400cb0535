"""Webhook deliveries: who may be a target, how a delivery is signed and sent, and the loop
in the API process that sends the due ones.

Each POST carries the exact stored body (deliveries.summary under "evaluation") and:

    Content-Type: application/json
    X-Micheck-Delivery: <delivery id>      (the same on every retry: deduplicate on it)
    X-Micheck-Event: evaluation.succeeded | evaluation.failed | evaluation.canceled
    X-Micheck-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>   (when a secret is set)

A 2xx answer delivers it. Anything else (including a redirect, which is never followed, a
timeout or a refused connection) is retried ``min(base * 2**(tries - 1), max)`` seconds
later (settings webhook_retry_base_s, webhook_retry_max_s: 10 s, 20 s, ... then every 10
minutes) until ``webhook_give_up_after_s`` (default a day, at least an hour) after the
delivery was created. Rows live in SQL, so a restarted service picks up where it stopped.

Every try is recorded as an attempt, whatever went wrong (send() never raises), and a
delivery still pending past the horizon is given up when it is next claimed, so no
delivery is retried forever.

Targets: the URL must be one httpx can send (built at submission exactly as a try builds
it), not on port 0, and its host must resolve only to public addresses unless
MICHECK_WEBHOOKS_ALLOW_PRIVATE=1; an IPv6 address that embeds an IPv4 one (mapped,
compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4, Teredo) is judged by that IPv4
address too. It is checked at submission (422) and again before each try; the request
then goes to the address that was checked (the Host header and TLS name stay the URL's),
so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

import micheck
from micheck.settings import Settings
from micheck.storage import deliveries
from micheck.storage.db import Database
from micheck.storage.models import utcnow

log = logging.getLogger("micheck.webhooks")
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The webhook URL points somewhere this service will not send to."""


def sign(secret: str, body: bytes) -> str:
    """The X-Micheck-Signature value: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


NAT64 = (ipaddress.ip_network("64:ff9b::/96"),  # the well-known prefix (RFC 6052)
         ipaddress.ip_network("64:ff9b:1::/48"))  # local-use (RFC 8215)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks), NAT64 (the
    last 32 bits under 64:ff9b::/96 or 64:ff9b:1::/48), 6to4 and Teredo."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    out = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (:: and ::1 are themselves)
        out.append(low)
    if any(ip in net for net in NAT64):
        out.append(low)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    return out


def _public(ip: IP) -> bool:
    """Globally routable and unicast. An IPv6 form of IPv4 addresses (mapped, compatible,
    NAT64, 6to4, Teredo) is judged by the IPv4 addresses it carries alone: Python's own
    `is_global` of those IPv6 ranges differs between patch releases (3.11.2 calls all of
    6to4's 2002::/16 non-global, 3.11.7 judges it by its address), and the route it names
    is the IPv4 one."""
    if ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner:
            return all(_public(v4) for v4 in inner)
    return ip.is_global


def _addresses(host: str, port: int) -> list[IP]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
    # an IPv6 scope ("fe80::1%eth0") is dropped: such an address is link-local anyway
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


def check_target(url: str, allow_private: bool) -> list[IP]:
    """The addresses to connect to; raises TargetRefused if the URL cannot be sent (httpx
    refuses it, or port 0) or any of its addresses is not public (all of them are
    checked: a client may connect to any). IPv6 forms of an IPv4 address (mapped,
    compatible, NAT64, 6to4, Teredo) are judged by that IPv4 address."""
    try:
        parts = urlsplit(url)
        port = parts.port if parts.port is not None else 443 if parts.scheme == "https" else 80
    except ValueError as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("webhook URL must be http(s) with a host")
    if port == 0:
        raise TargetRefused("port 0 is not a port anything listens on")
    try:  # exactly what a try sends, to a placeholder address: no network
        _request(url, ipaddress.ip_address("192.0.2.1"), b"", {})
    except Exception as exc:
        raise TargetRefused(f"cannot be sent: {type(exc).__name__}: {exc}"[:300]) from None
    addrs = _addresses(parts.hostname, port)
    if not addrs:
        raise TargetRefused(f"{parts.hostname!r} has no address")
    if not allow_private:
        bad = [str(a) for a in addrs if not _public(a)]
        if bad:
            raise TargetRefused(f"{parts.hostname!r} resolves to a private, loopback or "
                                f"reserved address ({', '.join(bad)}); set "
                                "MICHECK_WEBHOOKS_ALLOW_PRIVATE=1 to allow it")
    return addrs


def retry_delay(tries: int, settings: Settings) -> float:
    """Seconds before the next try after ``tries`` failed ones (>= 1)."""
    return min(settings.webhook_retry_base_s * 2 ** min(tries - 1, 40),
               settings.webhook_retry_max_s)


def next_attempt(tries: int, created_at: datetime, settings: Settings) -> datetime | None:
    """When to try again, or None when that is past the give-up horizon."""
    at = utcnow() + timedelta(seconds=retry_delay(tries, settings))
    horizon = created_at + timedelta(seconds=settings.webhook_give_up_after_s)
    return at if at <= horizon else None


def _request(url: str, ip: IP, body: bytes, headers: dict[str, str],
             build: Callable[..., httpx.Request] = httpx.Request) -> httpx.Request:
    """The POST of one try: to the checked address, with the URL's host in the Host
    header (IDNA-encoded) and as the TLS server name, so certificates are still checked
    against the URL's host and a DNS answer that changes between check and connect
    cannot redirect it. Raises whatever httpx raises for a URL it cannot send."""
    u = httpx.URL(url)
    target = u.copy_with(host=str(ip), fragment=None)
    ext = {"sni_hostname": u.raw_host.decode("ascii")} if u.scheme == "https" else {}
    return build("POST", target, content=body, extensions=ext,
                 headers={"Host": u.netloc.decode("ascii"), **headers})


async def send(http: httpx.AsyncClient, due: deliveries.Due, settings: Settings
               ) -> tuple[bool, int | None, str | None]:
    """One try: (delivered, status code, error). Never raises: whatever goes wrong (a
    refused target, a URL httpx rejects, a timeout) is the try's error."""
    body = due.payload.encode()
    try:
        addrs = await asyncio.to_thread(check_target, due.url, settings.webhooks_allow_private)
    except TargetRefused as exc:
        return False, None, f"refused: {exc}"
    except Exception as exc:
        return False, None, f"refused: {type(exc).__name__}: {exc}"[:500]
    headers = {"Content-Type": "application/json",
               "User-Agent": f"micheck-webhooks/{micheck.__version__}",
               "X-Micheck-Delivery": due.id, "X-Micheck-Event": due.event}
    if due.secret:
        headers["X-Micheck-Signature"] = sign(due.secret, body)
    try:
        # built by the client: its timeout and defaults apply
        r = await http.send(_request(due.url, addrs[0], body, headers, http.build_request))
    except Exception as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    if 200 <= r.status_code < 300:
        return True, r.status_code, None
    why = (f"redirect to {r.headers.get('location', '?')[:200]} (not followed)"
           if 300 <= r.status_code < 400 else f"HTTP {r.status_code}")
    return False, r.status_code, why


async def deliver_due(db: Database, settings: Settings, http: httpx.AsyncClient) -> int:
    """Send every delivery that is due now (concurrently); returns how many were tried.
    Every try is recorded, whatever it raised; one past the give-up horizon is given up
    when it is claimed (claim_due), so none is retried forever."""
    lease = timedelta(seconds=settings.webhook_timeout_s * 3 + 30)
    horizon = timedelta(seconds=settings.webhook_give_up_after_s)

    def claim() -> list[deliveries.Due]:
        with db.session() as s:
            return deliveries.claim_due(s, lease=lease, give_up_after=horizon)

    due = await asyncio.to_thread(claim)

    async def one(d: deliveries.Due) -> None:
        start = time.perf_counter()
        try:
            ok, code, error = await send(http, d, settings)
        except Exception as exc:  # send catches everything; this is the last net
            ok, code, error = False, None, f"{type(exc).__name__}: {exc}"[:500]
        ms = int((time.perf_counter() - start) * 1000)
        nxt = None if ok else next_attempt(d.attempts + 1, d.created_at, settings)

        def record() -> str:
            with db.session() as s:
                return deliveries.record_try(s, d.id, delivered=ok, status_code=code,
                                             error=error, duration_ms=ms,
                                             next_attempt_at=nxt)

        try:
            state = await asyncio.to_thread(record)
        except Exception as exc:  # the lease runs out and the next pass tries again
            log.warning("webhook delivery %s: could not record try %d: %s", d.id,
                        d.attempts + 1, exc)
            return
        if not ok:
            log.warning("webhook delivery %s (%s) try %d: %s -> %s", d.id, d.event,
                        d.attempts + 1, error, state)

    await asyncio.gather(*(one(d) for d in due))
    return len(due)


async def deliver_forever(db: Database, settings: Settings) -> None:
    """The API process's delivery loop: every webhook_poll_interval_s, errors logged."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=settings.webhook_timeout_s,
                                 trust_env=False) as http:
        while True:
            try:
                await deliver_due(db, settings, http)
            except Exception as exc:
                log.warning("webhook delivery pass failed: %s", exc)
            await asyncio.sleep(settings.webhook_poll_interval_s)
