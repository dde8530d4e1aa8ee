"""Page weight and time to first useful paint of the web UI on a 10,000-run history.

    python bench/ui_weight.py [--runs 10000] [--jobs 200] [--repeat 5] [--database-url URL]

Fills a fresh store before the server starts, as ``history.py`` does (bulk INSERTs: runs over
the last 90 days, about 5 % failed), starts ``herder server`` (open, on loopback), and loads
each page in headless Chromium (Debian's, ``/usr/bin/chromium``), in a fresh browser context
each time (nothing cached). For each page it prints:

- the bytes transferred until the page is useful (response bodies as sent, gzipped where the
  server gzips, plus headers), and the number of requests;
- the time from navigation to the first useful paint: until the element that makes the page
  useful is visible (the runs table has rows, the dashboard has its counts), median and max of
  ``--repeat`` loads;
- the same load again in the same context (the browser revalidates: 304s).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import start_server, stop_server, stop_supervisors, throwaway_database
from history import fill

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pages(busy: str) -> list[tuple[str, str, str]]:
    """(name, path, the selector that is visible once the page is useful)."""
    return [
        ("dashboard", "/#/", "main .big"),
        ("jobs", "/#/jobs", "main table tbody tr"),
        ("job", f"/#/jobs/{busy}", "main .strip .tick"),
        ("runs", "/#/runs", "table.runs tbody tr"),
        ("runs failed", "/#/runs?status=APP_ERROR", "table.runs tbody tr"),
        ("run", "/#/runs/{run}", "dl.facts"),
        ("admin audit", "/#/admin/audit", "main h1"),
    ]


def load(context: Any, url: str, ready: str) -> tuple[float, int, int]:
    """Seconds to the useful paint, bytes transferred until then, and requests."""
    page = context.new_page()
    seen: list[Any] = []
    page.on("requestfinished", lambda request: seen.append(request))
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(ready, state="visible", timeout=30_000)
    took = time.perf_counter() - began
    total = 0
    for request in seen:
        sizes = request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    page.close()
    return took, total, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    data_dir = folder / "data"
    data_dir.mkdir()
    with throwaway_database(options.database_url) as database_url:
        url = database_url or f"sqlite:///{data_dir / 'herder.db'}"
        data = fill(url, options.runs, options.jobs, 5_000, datetime.now(UTC))
        print(f"filled: {options.runs} runs of {options.jobs} jobs in "
              f"{data.insert_seconds:.1f} s")
        process, base = start_server(data_dir, database_url, folder / "server.log")
        try:
            import httpx

            newest = httpx.get(f"{base}/api/v1/runs", params={"limit": 1}).json()["items"][0]
            print(f"{'page':<12} {'bytes':>8} {'requests':>8} {'paint p50':>10} "
                  f"{'paint max':>10} {'again p50':>10}")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for name, path, ready in pages(data.busy.ref):
                    target = base + path.replace("{run}", str(newest["id"]))
                    cold: list[float] = []
                    warm: list[float] = []
                    weight = requests = 0
                    for _ in range(options.repeat):
                        context = browser.new_context(viewport={"width": 1280, "height": 800})
                        took, weight, requests = load(context, target, ready)
                        cold.append(took)
                        warm.append(load(context, target, ready)[0])
                        context.close()
                    print(f"{name:<12} {weight:>8} {requests:>8} "
                          f"{statistics.median(cold) * 1000:>8.0f}ms "
                          f"{max(cold) * 1000:>8.0f}ms {statistics.median(warm) * 1000:>8.0f}ms")
                browser.close()
        finally:
            stop_server(process)
            stop_supervisors(data_dir)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
