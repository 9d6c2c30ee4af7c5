"""Open the built site in headless Chromium as a reader would, check it, and take screenshots.

Run by ``make browser-check`` (part of ``make test``), after ``make docs``::

    .venv/bin/python docs/browser_check.py                   # screenshots in out/browser/

It serves ``site/`` on a free port of 127.0.0.1, as a host would, and drives Chromium (Debian: ``apt-get install chromium``)
through the DevTools protocol over a pipe (``--remote-debugging-pipe``): no WebDriver and no
Python package beyond the standard library. It checks, failing with exit status 1:

- the landing page: its title, the navigation, the search box and the version in the footer;
- an API page (api/nets.html): the entry of ``multi_head_attention`` with its signature, its
  folded source, and links to JAX's docs;
- the table of guide/nets.html: no name broken across lines (``multi_head_atten|tion``);
- a search for ``multi_head_attention`` (typed into the search box): the first result is the
  API entry ``zephyr.nets.multi_head_attention``; and for ``transformer_block``, that entry;
- site/index.html opened from disk (``file://``): the search box works there too (Material's
  offline plugin, mkdocs.yml);
- 404.html opened from disk: its stylesheet loads (no root-absolute links).

Each page is also saved as a PNG (1280x900) in ``out/browser/`` to look at.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1280, 900)
# Search: the query, and the anchor its first result must lead to.
SEARCHES = {
    "multi_head_attention": "api/nets.html#zephyr.nets.multi_head_attention",
    "transformer_block": "api/nets.html#zephyr.nets.transformer_block",
}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    sys.exit("browser_check.py: no Chromium on PATH (Debian: apt-get install chromium)")


def _pipe_fds(read_end: int, write_end: int) -> None:
    """In the child: its commands come in on fd 3, its replies go out on fd 4."""
    read_end, write_end = os.dup(read_end), os.dup(write_end)  # above 4, so neither dup2 clobbers the other
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


class Browser:
    """Headless Chromium driven through the DevTools protocol on a pipe (fds 3 and 4 of the child)."""

    def __init__(self, executable: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._profile = tempfile.TemporaryDirectory(prefix="zephyr-browser-")
        self._process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # as root in a container
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--force-device-scale-factor=1",
                "--allow-file-access-from-files",
                f"--user-data-dir={self._profile.name}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(3, 4),  # kept open: preexec puts the pipe's ends there
            preexec_fn=functools.partial(_pipe_fds, to_browser_r, from_browser_w),  # noqa: PLW1509
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)
        width, height = SIZE
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        reply: dict[str, Any] = json.loads(message)
        return reply

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait_for(self, condition: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(f"(() => {{ try {{ return {condition}; }} catch (e) {{ return null; }} }})()")
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout:.0f} s for {condition}")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def search(browser: Browser, query: str) -> list[str]:
    """Type ``query`` into the search box; the sections of the first page it lists, best first.

    Material groups the hits by page, the best page first; a group starts with the page
    itself, then its sections by score (``page.html#anchor``).
    """
    browser.evaluate("document.querySelector('label.md-search__icon, [for=__search]').click()")
    browser.evaluate(
        "(() => { const box = document.querySelector('input.md-search__input');"
        f" box.focus(); box.value = {json.dumps(query)};"
        " box.dispatchEvent(new Event('input', {bubbles: true}));"
        " box.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true})); })()"
    )
    browser.wait_for("document.querySelectorAll('.md-search-result__item').length > 0")
    time.sleep(0.5)  # the list settles (results render in batches)
    links = browser.evaluate(
        "[...document.querySelector('.md-search-result__item').querySelectorAll('a.md-search-result__link')]"
        ".map(a => a.href)"
    )
    # the highlight parameter (?h=...) off: page.html#anchor
    return [urlunsplit(urlsplit(str(link))._replace(query="")) for link in links if "#" in str(link)]


def check(site: Path, out: Path) -> list[str]:
    """Load the pages, check them, save the screenshots; the failures, described."""
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        print(("ok    " if condition else "FAIL  ") + what)
        if not condition:
            failures.append(what)

    out.mkdir(parents=True, exist_ok=True)
    server, base = serve(site)
    browser = Browser(chromium())
    try:
        browser.open(base + "index.html")
        expect(browser.evaluate("document.title").startswith("zephyr"), "landing page: the title starts with zephyr")
        expect(browser.evaluate("!!document.querySelector('input.md-search__input')"), "landing page: a search box")
        nav = browser.evaluate("[...document.querySelectorAll('.md-nav__link')].map(a => a.textContent.trim())")
        expect("Get started" in nav, "landing page: the navigation lists Get started")
        footer = browser.evaluate("document.querySelector('.md-copyright')?.textContent ?? ''")
        version = _version()
        expect(f"zephyr {version}" in footer, f"landing page: the footer shows the version (zephyr {version})")
        browser.screenshot(out / "landing.png")

        browser.open(base + "api/nets.html")
        entry = "document.getElementById('zephyr.nets.multi_head_attention')"
        expect(browser.evaluate(f"!!{entry}"), "API page: the entry of zephyr.nets.multi_head_attention")
        expect(
            browser.evaluate(f"{entry}.parentElement.querySelector('details.mkdocstrings-source summary')?.textContent.includes('Source code') ?? false"),
            "API page: the entry's source, folded under it",
        )
        jax_links = browser.evaluate("document.querySelectorAll('a[href^=\"https://docs.jax.dev/\"]').length")
        expect(jax_links > 0, f"API page: names link to JAX's docs ({jax_links} links)")
        browser.evaluate(f"{entry}.scrollIntoView()")
        time.sleep(0.3)
        browser.screenshot(out / "api-nets.png")

        browser.open(base + "guide/nets.html")
        broken = browser.evaluate(
            "[...document.querySelectorAll('.api-names td:first-child code')]"
            ".filter(c => c.getClientRects().length > 1).map(c => c.textContent)"
        )
        expect(broken == [], f"guide/nets.html: the table's names are whole (broken: {broken})")
        browser.screenshot(out / "guide-nets.png")

        for query, expected in SEARCHES.items():
            browser.open(base + "index.html")
            results = search(browser, query)
            first = results[0].removeprefix(base) if results else "(none)"
            expect(first == expected, f"search {query!r}: first result {first} (want {expected})")
            browser.screenshot(out / f"search-{query}.png")

        browser.open((site / "index.html").resolve().as_uri())
        results = search(browser, "multi_head_attention")
        first = results[0].rpartition("/site/")[2] if results else "(none)"
        expected = SEARCHES["multi_head_attention"]
        expect(first == expected, f"opened from disk: search works, first result {first} (want {expected})")
        browser.screenshot(out / "search-from-disk.png")

        page = (site / "404.html").resolve()
        browser.open(page.as_uri())
        loaded = browser.evaluate("[...document.styleSheets].some(s => (s.href ?? '').includes('assets/stylesheets/main'))")
        expect(loaded, "404.html from disk: Material's stylesheet loads")
        browser.screenshot(out / "404-from-disk.png")
    finally:
        browser.close()
        server.shutdown()
    return failures


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("zephyr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (make docs)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "browser", help="where the screenshots go")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"browser_check.py: no {args.site}/index.html: build the site first (make docs)")
    failures = check(args.site, args.out)
    print(f"screenshots in {args.out}")
    if failures:
        print(f"browser check: {len(failures)} failed")
        return 1
    print("browser check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
