#!/usr/bin/env python3
"""openloop: an open-loop HTTP/1.1 load generator, standard library only.

Independent of micheck and of the rest of bench/ (no httpx, no shared code): a second
opinion on the service benchmarks' figures. Request i is *scheduled* at t0 + i / rate and
timed from that moment, whatever happened to the requests before it, so a server that
falls behind shows it as latency (no coordinated omission): a request that waits for a
free connection, or for the generator itself, counts that wait too.

    python bench/openloop.py URL --rate 200 --seconds 10 [--method POST]
        [--body '{"seeds": [@I@]}'] [--header 'Authorization: Bearer ...']
        [--connections 256] [--timeout 30]

``@I@`` in the body (or the URL) becomes the request's index, so bodies can differ.
Prints one JSON object: offered and achieved rates, goodput (2xx per second), status
counts, and percentiles of the answered requests' latency from their scheduled send
(all answers, and 2xx only), plus the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections import Counter
from urllib.parse import urlsplit


def percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return round(sorted_ms[max(0, math.ceil(q / 100 * len(sorted_ms)) - 1)], 2)


class Pool:
    """Keep-alive connections to one host:port, opened on demand up to `limit`."""

    def __init__(self, host: str, port: int, limit: int):
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.freed:
            while not self.idle and self.opened >= self.limit:
                await self.freed.wait()
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError:
            async with self.freed:
                self.opened -= 1
                self.freed.notify()
            raise

    async def put(self, conn, reuse: bool) -> None:
        async with self.freed:
            if reuse:
                self.idle.append(conn)
            else:
                self.opened -= 1
                conn[1].close()
            self.freed.notify()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, bool]:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split(b" ", 2)[1])
    length, keep = 0, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def run(url: str, rate: float, seconds: float, method: str, body: str | None,
              headers: list[str], connections: int, timeout: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path_tpl = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{h.strip()}\r\n" for h in headers)
    pool = Pool(host, port, connections)
    n = int(rate * seconds)
    results: list[tuple[int, float]] = []  # (status or 0 for an error, ms from schedule)
    t0 = time.perf_counter() + 0.2

    async def one(i: int, due: float) -> None:
        path = path_tpl.replace("@I@", str(i))
        payload = body.replace("@I@", str(i)).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
                + (f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                   if body is not None else "") + "\r\n").encode()
        status = 0
        try:
            conn = await asyncio.wait_for(pool.get(), timeout)
            try:
                status, keep = await asyncio.wait_for(_exchange(*conn, head + payload),
                                                      timeout)
            except BaseException:
                await pool.put(conn, False)
                raise
            await pool.put(conn, keep)
        except (OSError, asyncio.TimeoutError, ConnectionError, ValueError, IndexError):
            status = 0
        results.append((status, (time.perf_counter() - due) * 1000))

    tasks = []
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    for _, w in list(pool.idle):
        w.close()
    answered = sorted(ms for s, ms in results if s)
    good = sorted(ms for s, ms in results if 200 <= s < 300)
    return {"offered_per_s": rate, "requests": n, "wall_s": round(wall, 2),
            "achieved_per_s": round(len(answered) / wall, 1),
            "goodput_per_s": round(len(good) / wall, 1),
            "statuses": dict(sorted(Counter(str(s) for s, _ in results).items())),
            "answered_ms": {"p50": percentile(answered, 50), "p99": percentile(answered, 99),
                            "max": round(answered[-1], 2) if answered else None},
            "2xx_ms": {"p50": percentile(good, 50), "p99": percentile(good, 99),
                       "max": round(good[-1], 2) if good else None}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--method", default="GET")
    p.add_argument("--body", help="JSON body; @I@ becomes the request's index")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args(argv)
    before = os.getloadavg()
    out = asyncio.run(run(a.url, a.rate, a.seconds, a.method.upper(), a.body, a.header,
                          a.connections, a.timeout))
    out["loadavg_before"] = [round(x, 2) for x in before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
