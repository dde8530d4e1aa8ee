"""End-to-end throughput: N runs of ``true`` submitted through the API, against bare fork+exec.

    python bench/throughput.py [--runs 2000] [--concurrency 32] [--database-url URL] [--auth]

Starts a real ``herder server`` (SQLite in a temporary folder unless ``--database-url``),
creates a job running ``true``, submits ``--runs`` runs over HTTP from ``--concurrency``
connections, and waits until every run has ended. It prints runs/s from the first submit to the
last end, beside the rate of bare ``subprocess.Popen(["true"]).wait()`` measured in the same
process just before, and their ratio (the goal is 0.5 or more). ``--auth`` turns
authentication on and submits with an operator token (the cost of checking it and of the audit
trail are then in the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import Server

ACTIVE = "READY,WAITING,JOB_DEPLOYED,PENDING,RUNNING,IN_DOUBT"


def bare_rate(count: int) -> float:
    true = shutil.which("true") or "/bin/true"
    start = time.perf_counter()
    for _ in range(count):
        subprocess.Popen([true]).wait()
    return count / (time.perf_counter() - start)


ADMIN_TOKEN = "bench-admin-token-0123456789"


async def _post_loop(port: int, path: str, count: int, ids: list[int], token: str) -> None:
    """One keep-alive connection posting ``count`` requests. A raw HTTP/1.1 client: a general
    one (httpx) spends more CPU per request than the server does, on the same two cores."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: 2\r\n\r\n{{}}"
    ).encode()
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            if status != 201:
                raise RuntimeError(f"run submission failed: {status} {body[:200]!r}")
            ids.append(json.loads(body)["id"])
    finally:
        writer.close()
        await writer.wait_closed()


async def submit_all(
    url: str, runs: int, concurrency: int, token: str = ""
) -> tuple[float, float, list[int]]:
    port = int(url.rsplit(":", 1)[1])
    ids: list[int] = []
    share, extra = divmod(runs, concurrency)
    shares = [share + (1 if i < extra else 0) for i in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(
        *(_post_loop(port, "/api/v1/jobs/bench-true/runs", n, ids, token) for n in shares if n)
    )
    submitted = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        while True:
            page = (await client.get("/api/v1/runs", params={"status": ACTIVE, "limit": 1})).json()
            if not page["items"]:
                break
            await asyncio.sleep(0.01)
    return start, submitted, ids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--auth", action="store_true", help="submit with an operator token")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    env = {"HERDER_LOG_LEVEL": "warning"}
    if args.auth:
        env["HERDER_ADMIN_TOKEN"] = ADMIN_TOKEN
    server = Server(folder / "data", database_url=args.database_url, env=env).start()
    try:
        token = ""
        if args.auth:
            server.client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            token = server.client.post("/api/v1/tokens", json={
                "name": "bench", "namespace": "default", "role": "operator"}).json()["token"]
        server.create_job(name="bench-true", command=["true"])
        bare = bare_rate(min(args.runs, 2000))
        start, submitted, ids = asyncio.run(
            submit_all(server.url, args.runs, args.concurrency, token)
        )
        ended = time.perf_counter()
        statuses = server.client.get("/api/v1/runs", params={"job": "bench-true", "status":
                                                            "SUCCESS", "limit": 1000}).json()
        ok = len(statuses["items"])
        rate = len(ids) / (ended - start)
        store = "PostgreSQL" if args.database_url else "SQLite"
        print(f"store:                 {store}{' (authenticated)' if args.auth else ''}")
        print(f"cores:                 {os.cpu_count()}")
        print(f"runs:                  {len(ids)} (concurrency {args.concurrency})")
        print(f"submit phase:          {len(ids) / (submitted - start):8.0f} runs/s accepted")
        print(f"end to end:            {rate:8.0f} runs/s")
        print(f"bare fork+exec:        {bare:8.0f} /s")
        print(f"ratio:                 {rate / bare:8.2f}   (goal >= 0.5)")
        print(f"successes (first 1000 shown): {ok}")
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
