"""Page geometry checks for the HTML report, run inside the page with its own layout numbers, and the
headless Chromium every browser test opens its pages in (``chromium``; the ``browser`` and ``page``
fixtures of tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The Chromium ``make chromium`` installs, and switches that keep it from reaching the network.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright ``Browser``) for the block; closed, with its pages, on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()

#: Every text box on the page (one per line of HTML text, one per SVG text element), then the
#: pairs that overlap and the labels cut off by their box. Hidden elements have no boxes.
GEOMETRY_JS = """
() => {
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest('svg') || el.closest('script,style,title')) continue;
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width > 0.5 && r.height > 0.5) boxes.push({r, what: node.textContent.trim().slice(0, 40)});
    }
  }
  document.querySelectorAll('svg text').forEach(t => {
    for (const span of (t.querySelectorAll('tspan').length ? t.querySelectorAll('tspan') : [t])) {
      const r = span.getBoundingClientRect();
      if (r.width > 0.5 && r.height > 0.5) boxes.push({r, what: span.textContent.trim().slice(0, 40)});
    }
  });
  const sx = window.scrollX, sy = window.scrollY;
  const items = boxes.map(b => ({l: b.r.left + sx, t: b.r.top + sy, r: b.r.right + sx, b: b.r.bottom + sy,
                                 what: b.what}));
  items.sort((a, b) => a.t - b.t);
  const overlaps = [];
  const slack = 1.5;
  for (let i = 0; i < items.length; i++) {
    const a = items[i];
    for (let j = i + 1; j < items.length && items[j].t < a.b - slack; j++) {
      const b = items[j];
      if (Math.min(a.r, b.r) - Math.max(a.l, b.l) > slack && Math.min(a.b, b.b) - Math.max(a.t, b.t) > slack) {
        overlaps.push([a.what, b.what]);
      }
    }
  }
  const cut = [];
  document.querySelectorAll('body *').forEach(el => {
    if (el.closest('svg') || !el.offsetParent) return;
    const style = getComputedStyle(el);
    if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1) cut.push(el.tagName + ': ' +
      el.textContent.trim().slice(0, 40));
  });
  document.querySelectorAll('svg').forEach(svg => {
    const box = svg.getBoundingClientRect();
    svg.querySelectorAll('text').forEach(t => {
      const r = t.getBoundingClientRect();
      if (r.width && (r.left < box.left - 1 || r.right > box.right + 1)) cut.push('svg: ' + t.textContent.slice(0, 40));
    });
  });
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + 1) cut.push('page scrolls sideways: ' + page.scrollWidth);
  return {count: items.length, overlaps: overlaps.slice(0, 10), overlapCount: overlaps.length, cut: cut.slice(0, 10)};
}
"""

FOLD_JS = """
() => {
  const box = s => { const e = document.querySelector(s); if (!e) return null; const r = e.getBoundingClientRect();
                     return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY}; };
  return {headline: box('.headline'), money: box('.money'), height: window.innerHeight};
}
"""


def geometry(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(GEOMETRY_JS)
    return result


def fold(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(FOLD_JS)
    return result
