"""Screenshots of the built site with headless Chromium, to look at the pages as a reader would.

Not run in CI. Build the site first, then::

    make docs
    .venv/bin/python docs/screenshots.py                 # PNGs in out/screenshots/
    .venv/bin/python docs/screenshots.py --out /tmp/shots --page api/nets.html#zephyr.nets.conv_2d

Each page is taken at a desktop width (1280 px) and a phone width (390 px). Needs Chromium
(on Debian: ``apt-get install chromium``). The site is opened from disk (``file://``: the
site is built with ``use_directory_urls: false``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["index.html", "guide/tags.html", "api/nets.html#zephyr.nets.multi_head_attention"]
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
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"screenshots.py: no site at {args.site}: run `make docs` first")
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    for page in args.page or PAGES:
        path, _, anchor = page.partition("#")
        url = (args.site / path).resolve().as_uri() + (f"#{anchor}" if anchor else "")
        for label, size in WIDTHS.items():
            out = args.out / f"{path.replace('/', '_').removesuffix('.html')}-{label}.png"
            shoot(browser, url, size, out)
            print(out)


if __name__ == "__main__":
    main()
