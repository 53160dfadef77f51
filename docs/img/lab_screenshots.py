"""Regenerate the screenshots of docs/trainers.md: ``.venv/bin/python docs/img/lab_screenshots.py``.

Starts ``possim lab --port 0 --no-browser``, drives it in headless Chromium as the class plan
does, and writes small PNGs (1024 px wide: the top of the page, or one part of it) next to this file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.views.test_lab import READY, read_line  # noqa: E402
from tests.views.test_report import CHROME_ARGS, CHROMIUM  # noqa: E402

SIZE = {"width": 1024, "height": 640}


def _wait_run(page: Any, before: int) -> None:
    page.wait_for_function(f"parseInt(document.body.getAttribute('data-done') || '0', 10) > {before}")


def _do(page: Any, action: Any) -> None:
    before = int(page.evaluate("document.body.getAttribute('data-done') || '0'"))
    action()
    _wait_run(page, before)


def _arrow_menu(page: Any, mti: str) -> None:
    arrow = page.locator(f"#col-0 svg .arrow[data-mti='{mti}']").first
    arrow.evaluate("g => g.scrollIntoView({block: 'center'})")
    arrow.locator("line.hit").click()


def shots(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport=SIZE)
        page.goto(url)
        _wait_run(page, 0)
        _do(page, lambda: page.select_option("#scenario", "response-lost"))
        _do(page, lambda: page.select_option("#policy-a", "none"))
        page.screenshot(path=str(HERE / "lab-en.png"))
        _arrow_menu(page, "0210")
        box = page.locator("#col-0 svg").bounding_box()
        page.screenshot(path=str(HERE / "lab-menu-en.png"), clip={"x": 0, "y": box["y"], "width": SIZE["width"],
                                                                 "height": 360})
        _do(page, lambda: page.click("#menu button[data-action='restore']"))
        page.locator("#col-0 .point").screenshot(path=str(HERE / "lab-restored-en.png"))
        _do(page, lambda: page.click("#reset"))
        _do(page, lambda: page.select_option("#policy-b", "reversal"))
        page.select_option("#lang", "zh")
        page.wait_for_url("**/?lang=zh**")
        _wait_run(page, 0)
        page.screenshot(path=str(HERE / "lab-zh.png"))
        page.keyboard.press("p")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.screenshot(path=str(HERE / "lab-present-zh.png"))
        browser.close()


def main() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "possim", "lab", "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE)
    try:
        found = READY.match(read_line(proc))
        assert found, "no readiness line"
        shots(found.group(1))
    finally:
        proc.terminate()
        proc.wait(60)
        if proc.stdout:
            proc.stdout.close()


if __name__ == "__main__":
    main()
