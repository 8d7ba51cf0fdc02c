#!/usr/bin/env python3
"""Open the built book in headless Chromium and check that it works offline.

Checks, for the HTML folder of a build (``_build/html``):

- every expected page exists;
- no page references a CDN or any remote script/stylesheet host (the book must work offline);
- in each page the plotly figures actually drew: Chromium loads the page from disk with all
  network traffic sent to a dead proxy, runs its scripts for a virtual-time budget, and the
  dumped DOM is searched for ``<svg class="main-svg"`` and for graph divs plotly marked
  ``js-plotly-plot`` (drawn) out of the ``plotly-graph-div`` containers in the page;
- a full-page screenshot of one page is saved for humans.

Usage: ``python tools/browser_check.py _build/html --pages 00_intro 01_data_tail
--min-figures 1 --screenshot _build/screenshots/01_data_tail.png [--json report.json]``.
Exit status 0 when every check passes. Standard library only, so tests can import it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Hosts a page of the book must never name (CDNs and font/script hosts).
CDN_PATTERN = re.compile(
    r"(cdn\.plot\.ly|cdn\.jsdelivr\.net|jsdelivr|unpkg\.com|cdnjs\.cloudflare\.com|googleapis\.com|"
    r"gstatic\.com|cdn\.mathjax\.org|code\.jquery\.com|stackpath\.bootstrapcdn\.com|cdn\.bokeh\.org)",
    re.IGNORECASE)
#: A remote src/href in a script or link tag (any host).
REMOTE_ASSET = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//[^\"']+", re.IGNORECASE)
MAIN_SVG = re.compile(r"<svg\b[^>]*\bclass=\"main-svg\"", re.IGNORECASE)
GRAPH_DIV = re.compile(r"class=\"[^\"]*\bplotly-graph-div\b", re.IGNORECASE)
DRAWN_DIV = re.compile(r"class=\"[^\"]*\bjs-plotly-plot\b", re.IGNORECASE)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                  # every non-file request goes to a closed port: the page must not need the network
                  "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$CHROMIUM``, /usr/bin/chromium, or one on PATH."""
    candidates = [os.environ.get("CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def _chromium(chromium: str, args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="o365book-chromium-") as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(chromium: str, page: Path, *, budget_ms: int = 20000, timeout: float = 180) -> str:
    """The DOM of ``page`` after its scripts ran for ``budget_ms`` of virtual time."""
    result = _chromium(chromium, [f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()],
                       timeout=timeout)
    if result.returncode != 0 or "<html" not in result.stdout.lower():
        raise RuntimeError(f"chromium --dump-dom failed on {page} (exit {result.returncode}): "
                           f"{result.stderr[-2000:]}")
    return result.stdout


def screenshot(chromium: str, page: Path, out: Path, *, width: int = 1280, height: int = 3200,
               budget_ms: int = 20000, timeout: float = 180) -> Path:
    """A PNG screenshot of ``page`` (``width`` x ``height`` pixels) after its scripts ran."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result = _chromium(chromium, [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}",
                                  f"--screenshot={out.resolve()}", page.resolve().as_uri()], timeout=timeout)
    if not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium --screenshot wrote nothing for {page} (exit {result.returncode}): "
                           f"{result.stderr[-2000:]}")
    return out


def cdn_references(html_dir: Path) -> dict[str, list[str]]:
    """Page -> CDN names or remote asset tags found in it, for every ``*.html`` under ``html_dir``."""
    found = {}
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf8", errors="replace")
        hits = sorted({m.group(0) for m in CDN_PATTERN.finditer(text)})
        hits += sorted({m.group(0)[:160] for m in REMOTE_ASSET.finditer(text)})
        if hits:
            found[str(page.relative_to(html_dir))] = hits
    return found


def check_book(html_dir: str | Path, *, pages: list[str], min_figures: int = 1, screenshot_page: str | None = None,
               screenshot_path: str | Path | None = None, chromium: str | None = None,
               budget_ms: int = 20000) -> dict:
    """Run every check; returns a report dict with ``ok`` and ``problems`` (a list of messages)."""
    html_dir = Path(html_dir)
    chromium = chromium or find_chromium()
    report: dict = {"html_dir": str(html_dir), "chromium": chromium, "pages": {}, "problems": []}
    problems = report["problems"]
    if not chromium:
        problems.append("no Chromium found (apt-get install -y chromium, or set $CHROMIUM)")
    for name in pages:
        if not (html_dir / f"{name}.html").is_file():
            problems.append(f"page {name}.html is missing from {html_dir}")
    cdn = cdn_references(html_dir)
    report["cdn"] = cdn
    problems += [f"{page}: names a remote host: {hits}" for page, hits in cdn.items()]
    total_drawn = 0
    if chromium:
        for name in pages:
            page = html_dir / f"{name}.html"
            if not page.is_file():
                continue
            dom = dump_dom(chromium, page, budget_ms=budget_ms)
            static = len(GRAPH_DIV.findall(page.read_text(encoding="utf8", errors="replace")))
            info = {"figures_in_page": static, "figures_drawn": len(DRAWN_DIV.findall(dom)),
                    "main_svg": len(MAIN_SVG.findall(dom))}
            report["pages"][name] = info
            total_drawn += info["figures_drawn"]
            if info["figures_drawn"] < static:
                problems.append(f"{name}: only {info['figures_drawn']} of {static} plotly figures drew")
        if total_drawn < min_figures:
            problems.append(f"{total_drawn} plotly figure(s) drew in all pages; expected at least {min_figures}")
        if screenshot_path:
            target = screenshot_page or pages[-1]
            report["screenshot"] = str(screenshot(chromium, html_dir / f"{target}.html", Path(screenshot_path),
                                                  budget_ms=budget_ms))
    report["figures_drawn"] = total_drawn
    report["ok"] = not problems
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--pages", nargs="+", required=True, help="page names without .html")
    parser.add_argument("--min-figures", type=int, default=1)
    parser.add_argument("--screenshot", type=Path, help="PNG path for a screenshot")
    parser.add_argument("--screenshot-page", help="page to screenshot (default: the last of --pages)")
    parser.add_argument("--budget-ms", type=int, default=20000, help="virtual time for scripts")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    report = check_book(args.html_dir, pages=args.pages, min_figures=args.min_figures,
                        screenshot_page=args.screenshot_page, screenshot_path=args.screenshot,
                        budget_ms=args.budget_ms)
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
