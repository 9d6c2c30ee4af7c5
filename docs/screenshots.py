"""Screenshots of the built site with headless Chromium, to look at the pages as a reader would.

Not run in CI. Build the site first, then::

    make docs
    .venv/bin/python docs/screenshots.py                 # PNGs in out/screenshots/
    .venv/bin/python docs/screenshots.py --out /tmp/shots --page api/tags.html --screens 2

Each page is taken at a desktop width (1280 px) and a phone width (390 px). Needs Chromium
(on Debian: ``apt-get install chromium``). The script serves the site on a free port of
127.0.0.1 while it takes them, as a host would. ``docs/browser_check.py`` (``make
browser-check``) is the check that runs in ``make test``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Pages, and how many screens tall to take them (an API page: several entries). A URL
# fragment (#zephyr.nets.conv_2d) gives a blank screenshot in headless Chromium: whole pages.
PAGES = {"index.html": 1, "guide/tags.html": 1, "api/nets.html": 3}
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    sys.exit("screenshots.py: no Chromium on PATH (Debian: apt-get install chromium)")


def shoot(browser: str, url: str, size: tuple[int, int], out: Path) -> None:
    width, height = size
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # as root in a container
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={width},{height}",
            "--virtual-time-budget=3000",  # let the theme's scripts run (palette, highlighting)
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (default: site/)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "screenshots", help="where to write the PNGs")
    parser.add_argument("--page", action="append", help="a page of the site, e.g. guide/tags.html (repeatable)")
    parser.add_argument("--screens", type=int, default=1, help="how many screens tall to take the --page pages")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"screenshots.py: no site at {args.site}: run `make docs` first")
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    handler = functools.partial(Quiet, directory=str(args.site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            pages = dict.fromkeys(args.page, args.screens) if args.page else PAGES
            for page, screens in pages.items():
                url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
                for label, (width, height) in WIDTHS.items():
                    out = args.out / f"{page.replace('/', '_').removesuffix('.html')}-{label}.png"
                    shoot(browser, url, (width, height * screens), out)
                    print(out)
        finally:
            server.shutdown()


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the site without logging each request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    main()
