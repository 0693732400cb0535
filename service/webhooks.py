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

Targets: the URL's host must resolve only to public addresses unless
MICHECK_WEBHOOKS_ALLOW_PRIVATE=1. It is checked at submission (422) and again before each
try; the request then goes to the address that was checked (the Host header and TLS name
stay the URL's), so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

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


def _public(ip: IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
    """The addresses to connect to; raises TargetRefused if any of them is not public
    (all of them are checked: a client may connect to any)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("webhook URL must be http(s) with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
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


def _pinned(url: str, ip: IP) -> tuple[str, dict[str, str], dict]:
    """The URL with its host replaced by the checked address, the Host header, and the
    TLS server name (so certificates are still checked against the URL's host)."""
    parts = urlsplit(url)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = host + (f":{parts.port}" if parts.port else "")
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    ext = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return target, {"Host": host_header}, ext


async def send(http: httpx.AsyncClient, due: deliveries.Due, settings: Settings
               ) -> tuple[bool, int | None, str | None]:
    """One try: (delivered, status code, error)."""
    body = due.payload.encode()
    try:
        addrs = await asyncio.to_thread(check_target, due.url, settings.webhooks_allow_private)
    except TargetRefused as exc:
        return False, None, f"refused: {exc}"
    target, headers, ext = _pinned(due.url, addrs[0])
    headers.update({"Content-Type": "application/json",
                    "User-Agent": f"micheck-webhooks/{micheck.__version__}",
                    "X-Micheck-Delivery": due.id, "X-Micheck-Event": due.event})
    if due.secret:
        headers["X-Micheck-Signature"] = sign(due.secret, body)
    try:
        r = await http.post(target, content=body, headers=headers, extensions=ext)
    except httpx.HTTPError as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    if 200 <= r.status_code < 300:
        return True, r.status_code, None
    why = (f"redirect to {r.headers.get('location', '?')[:200]} (not followed)"
           if 300 <= r.status_code < 400 else f"HTTP {r.status_code}")
    return False, r.status_code, why


async def deliver_due(db: Database, settings: Settings, http: httpx.AsyncClient) -> int:
    """Send every delivery that is due now (concurrently); returns how many were tried."""
    lease = timedelta(seconds=settings.webhook_timeout_s * 3 + 30)

    def claim() -> list[deliveries.Due]:
        with db.session() as s:
            return deliveries.claim_due(s, lease=lease)

    due = await asyncio.to_thread(claim)

    async def one(d: deliveries.Due) -> None:
        start = time.perf_counter()
        ok, code, error = await send(http, d, settings)
        ms = int((time.perf_counter() - start) * 1000)
        nxt = None if ok else next_attempt(d.attempts + 1, d.created_at, settings)

        def record() -> str:
            with db.session() as s:
                return deliveries.record_try(s, d.id, delivered=ok, status_code=code,
                                             error=error, duration_ms=ms,
                                             next_attempt_at=nxt)

        state = await asyncio.to_thread(record)
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
