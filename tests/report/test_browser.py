"""The rendered reports in a real browser: headless Chromium through Playwright.

``crmresearch report`` renders one small Chinese (``--language zh``) month once per module;
the index, the bank report and a branch report are then opened from ``file://`` URLs in
Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``) and checked:

1. self-contained: no request leaves the page (only ``file:`` and ``data:`` URLs), none fails,
   no console error, and no element or style sheet refers to anything but ``data:`` URLs
   and files next to the page;
2. every figure (``<img>``) decodes and is visible with a non-zero box;
3. Chinese text is drawn with the embedded web font ``crmresearch-cjk``, not as "tofu": the
   font face loads, and Chromium's own account of the fonts it used for a text node
   (DevTools ``CSS.getPlatformFontsForNode``) shows the embedded font drew every Chinese
   glyph, both of the section heading "1. 概览" and of every Chinese character on the page;
4. the index table sorts when a column header is clicked, and its links open existing
   reports.

Without Playwright or Chromium the module is skipped, except in CI (``CI=true``) where
that is a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest

from crmresearch.data.demo import DEFAULT_AS_OF
from crmresearch.viz.i18n import label

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MONTH = f"{DEFAULT_AS_OF:%Y-%m}"  # the last closed month of the conftest demo bank
FONT_FAMILY = "crmresearch-cjk"
SECTION_1_ZH = "1. 概览"
# Han ideographs, CJK symbols and punctuation, full-width forms: what a Latin font cannot draw
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
PAGES = ("index", "bank", "branch")


def _unavailable(reason: str) -> None:
    """Skip, except in CI (``CI=true``), where a browser test that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, launched once per module."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if executable is None:
        _unavailable(f"Chromium is not installed ({CHROMIUM}; apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except PlaywrightError as exc:
            _unavailable(f"Chromium ({executable}) does not start under Playwright: {exc}")
        yield browser
        browser.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def month_dir(browser: Browser, small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One month of Chinese reports of the small demo bank (3 branches), rendered by the CLI.

    Depends on ``browser`` so that a missing browser skips before the minute of rendering.
    """
    work = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "CRMRESEARCH_PSEUDONYM_KEY": secrets.token_hex(32),
           "CRMRESEARCH_CACHE": str(work / "cache")}  # fmt: skip
    cmd = [sys.executable, "-m", "crmresearch.cli", "report", str(small_demo), "--month", MONTH,
           "--out", str(work / "reports"), "--language", "zh", "--workers", "2",
           "--cache-dir", str(work / "cache")]  # fmt: skip
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"crmresearch report failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}"
    print(f"reports rendered in {time.perf_counter() - started:.1f} s")
    out = work / "reports" / MONTH
    assert (out / "index.html").is_file() and (out / "bank.html").is_file()
    assert sorted((out / "branches").glob("*.html")), "no branch report was rendered"
    return out


def _page_path(month_dir: Path, which: str) -> Path:
    if which == "branch":
        return sorted((month_dir / "branches").glob("*.html"))[0]
    return month_dir / f"{which}.html"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh, offline browser context: nothing can leave the machine even if a page tried."""
    ctx = browser.new_context(offline=True, service_workers="block", viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


class Opened:
    """A report page loaded in the browser, with what it asked for and complained about."""

    def __init__(self, context: BrowserContext, path: Path) -> None:
        self.path = path
        self.outside: list[str] = []  # requests to anything but file: and data: URLs
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.page: Page = context.new_page()
        page = self.page
        page.on("request", self._on_request)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url[:120]} ({r.failure})"))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("websocket", lambda ws: self.outside.append(f"websocket {ws.url}"))
        page.goto(path.as_uri(), wait_until="load")
        page.evaluate("document.fonts.ready.then(() => true)")
        page.wait_for_load_state("networkidle")

    def _on_request(self, request: Any) -> None:
        if not request.url.startswith(("file:", "data:")):
            self.outside.append(f"{request.resource_type} {request.url[:120]}")


def _open(context: BrowserContext, month_dir: Path, which: str) -> Opened:
    return Opened(context, _page_path(month_dir, which))


def _local_file(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(unquote(parts.path))


# ------------------------------------------------------------- 1. self-contained


# every URL the page itself refers to, as [where, url]: resource attributes and url(...)
# in style attributes and style sheets
_REFERENCES_JS = """() => {
  const refs = [];
  const attrs = [["img", "src"], ["img", "srcset"], ["script", "src"], ["link", "href"],
                 ["iframe", "src"], ["frame", "src"], ["embed", "src"], ["object", "data"],
                 ["source", "src"], ["source", "srcset"], ["video", "src"], ["video", "poster"],
                 ["audio", "src"], ["track", "src"], ["input", "src"], ["image", "href"],
                 ["use", "href"], ["feImage", "href"], ["base", "href"], ["form", "action"]];
  for (const [tag, attr] of attrs)
    for (const el of document.getElementsByTagName(tag)) {
      const v = el.getAttribute(attr) || el.getAttribute("xlink:" + attr);
      if (v) refs.push([`<${tag} ${attr}>`, v.trim()]);
    }
  const urls = (where, css) => {
    for (const m of css.matchAll(/url\\(\\s*["']?([^"')]*)/g)) refs.push([where, m[1].trim()]);
  };
  for (const el of document.querySelectorAll("[style]")) urls(`<${el.localName} style>`, el.getAttribute("style"));
  for (const sheet of document.styleSheets) {
    if (sheet.href) refs.push(["stylesheet", sheet.href]);
    for (const rule of sheet.cssRules) urls("stylesheet", rule.cssText);
  }
  return refs;
}"""


def _leaves_the_folder(url: str) -> bool:
    """True for a URL that is neither ``data:``, a #fragment nor relative to the page."""
    if url.startswith(("data:", "#")):
        return False
    return url.startswith("//") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) is not None or url.startswith("/")


@pytest.mark.parametrize("which", PAGES)
def test_page_is_self_contained(context: BrowserContext, month_dir: Path, which: str) -> None:
    opened = _open(context, month_dir, which)
    assert opened.outside == [], f"{which}: requests leave the page: {opened.outside}"
    assert opened.failed == [], f"{which}: failed requests: {opened.failed}"
    assert opened.errors == [], f"{which}: console errors: {opened.errors}"
    # what was not requested (e.g. a font face not used, a print style) must not point out either
    refs = opened.page.evaluate(_REFERENCES_JS)
    outside = [f"{where} {url[:120]}" for where, url in refs if _leaves_the_folder(url)]
    assert outside == [], f"{which}: references outside the page and its folder: {outside}"
    # links between the pages (not the #anchors inside one) lead to files that exist
    hrefs = opened.page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    files = {h.split("#")[0] for h in hrefs if h.startswith("file:")}
    missing = sorted(f for f in files if not _local_file(f).is_file())
    assert missing == [], f"{which}: links to missing files: {missing}"


# ------------------------------------------------------------------- 2. figures


_IMAGES_JS = """async () => Promise.all([...document.images].map(async (img) => {
  let decoded = "ok";
  try { await img.decode(); } catch (e) { decoded = String(e); }
  return {alt: img.alt, src: img.getAttribute("src").slice(0, 30), complete: img.complete,
          width: img.naturalWidth, height: img.naturalHeight, decoded: decoded};
}))"""


@pytest.mark.parametrize("which", PAGES)
def test_figures_are_visible(context: BrowserContext, month_dir: Path, which: str) -> None:
    page = _open(context, month_dir, which).page
    images = page.evaluate(_IMAGES_JS)
    if which != "index":
        assert images, f"{which}: no figure"
    for i, img in enumerate(images):
        where = f"{which}: figure {i} ({img['alt']!r})"
        assert img["src"].startswith("data:image/"), f"{where} is not an inline image: {img['src']}"
        assert img["complete"] and img["decoded"] == "ok", f"{where} does not decode: {img['decoded']}"
        assert img["width"] > 0 and img["height"] > 0, f"{where} has no natural size"
        loc = page.locator("img").nth(i)
        loc.scroll_into_view_if_needed()
        assert loc.is_visible(), f"{where} is not visible"
        box = loc.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, f"{where}: empty box {box}"


# ------------------------------------------------------------- 3. Chinese text


def _fonts_of(page: Page, selector: str) -> list[list[dict]]:
    """The fonts Chromium drew the text of each ``selector`` match with, in document order.

    DevTools' ``CSS.getPlatformFontsForNode`` reports, for the text nodes directly inside an
    element, each font used: ``familyName`` (the font's own name), ``isCustomFont`` (an
    @font-face web font rather than a system font) and ``glyphCount`` (glyphs it drew).
    (Enabling the CSS domain logs a console error on ``file:`` pages: the console checks
    are done on pages that never see DevTools.)
    """
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
        assert nodes, f"no element {selector}"
        return [cdp.send("CSS.getPlatformFontsForNode", {"nodeId": n})["fonts"] for n in nodes]
    finally:
        cdp.detach()


def _web_font_glyphs(fonts: list[dict]) -> int:
    return sum(f["glyphCount"] for f in fonts if f["isCustomFont"])


def _show(fonts: list[dict]) -> str:
    return " + ".join(f"{f['familyName']}{' (web font)' if f['isCustomFont'] else ''}: {f['glyphCount']}"
                      for f in fonts) or "none"  # fmt: skip


# marks every rendered element whose own text has Chinese characters; returns what it marked
_MARK_CHINESE_JS = """(pattern) => {
  const re = new RegExp(pattern, "g");
  const marked = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!el.getClientRects().length) continue;  // not rendered (display: none, ...)
    let text = "";
    for (const node of el.childNodes) if (node.nodeType === Node.TEXT_NODE) text += node.data;
    const count = (text.match(re) || []).length;
    if (!count) continue;
    el.setAttribute("data-chinese", String(marked.length));
    marked.push([el.localName, text.trim().slice(0, 60), count]);
  }
  return marked;
}"""


@pytest.mark.parametrize("which", PAGES)
def test_chinese_text_is_drawn_with_the_embedded_font(context: BrowserContext, month_dir: Path,
                                                      which: str) -> None:  # fmt: skip
    page = _open(context, month_dir, which).page
    assert page.evaluate("document.documentElement.lang").startswith("zh")
    # the data-URL font face is there and loaded (a broken or rejected font is "error")
    faces = page.evaluate("[...document.fonts].map(f => [f.family.replace(/[\"']/g, ''), f.status])")
    ours = [status for family, status in faces if family == FONT_FAMILY]
    assert ours, f"{which}: no @font-face {FONT_FAMILY!r} (faces: {faces})"
    assert set(ours) == {"loaded"}, f"{which}: font face {FONT_FAMILY!r} is {ours}"
    assert page.evaluate(f"document.fonts.check('16px \"{FONT_FAMILY}\"', '概览')")

    # every piece of Chinese text on the page, as drawn: its Chinese characters must come
    # from the embedded font. The page's stack lists Latin system fonts first; a Chinese
    # character they lack should fall through to the embedded font. Any that is drawn with
    # another font comes from a system font (or, with none, is a tofu box).
    marked = page.evaluate(_MARK_CHINESE_JS, CJK.pattern)
    assert len(marked) >= 5, f"{which}: hardly any Chinese text: {marked}"
    if which != "index":
        assert any(text == SECTION_1_ZH for _, text, _ in marked), f"{which}: no {SECTION_1_ZH!r}"
    drawn = _fonts_of(page, "[data-chinese]")
    assert len(drawn) == len(marked)
    wrong = [f"<{tag}> {text!r}: {count} Chinese characters, fonts {_show(fonts)}"
             for (tag, text, count), fonts in zip(marked, drawn, strict=True)
             if _web_font_glyphs(fonts) < count]  # fmt: skip
    assert not wrong, (f"{which}: {len(wrong)} of {len(marked)} Chinese texts are not drawn (all) "
                       f"with the embedded font {FONT_FAMILY!r}:\n  " + "\n  ".join(wrong))  # fmt: skip

    # and the font has every Chinese character of the page: set in the embedded font alone,
    # a character it lacks would come from another (system or last-resort) font
    chars = sorted(set(CJK.findall(page.evaluate("document.body.innerText"))))
    page.evaluate("""([family, text]) => {
      const el = document.createElement("p");
      el.id = "font-probe";
      el.style.fontFamily = `"${family}"`;
      el.textContent = text;
      document.body.appendChild(el);
    }""", [FONT_FAMILY, "".join(chars)])  # fmt: skip
    page.evaluate("async () => { document.body.offsetHeight; await document.fonts.ready; }")  # laid out first
    [fonts] = _fonts_of(page, "#font-probe")
    for _ in range(5):  # under load the probe can be measured before it is drawn: no font at all yet
        if fonts:
            break
        page.wait_for_timeout(200)
        [fonts] = _fonts_of(page, "#font-probe")
    if any(not f["isCustomFont"] for f in fonts) or _web_font_glyphs(fonts) != len(chars):
        lacking = [c for c in chars if not _drawn_by_web_font(page, c)]
        pytest.fail(f"{which}: the embedded font lacks {len(lacking)} of the page's {len(chars)} "
                    f"Chinese characters: {''.join(lacking)!r} (fonts used: {_show(fonts)})")  # fmt: skip


def _drawn_by_web_font(page: Page, char: str) -> bool:
    page.evaluate("c => { document.getElementById('font-probe').textContent = c; }", char)
    [fonts] = _fonts_of(page, "#font-probe")
    return bool(fonts) and all(f["isCustomFont"] for f in fonts)


# ------------------------------------------------------------------- 4. the index


def _column(page: Page, header: str) -> tuple[int, list[float | None]]:
    """Index of ``header`` in the branches table and its sort keys, top to bottom."""
    heads = page.eval_on_selector_all("table#branches thead th", "ths => ths.map(t => t.textContent.trim())")
    # the sorted header shows an arrow after its text
    idx = next((i for i, h in enumerate(heads) if h.rstrip(" ▲▼") == header), None)
    assert idx is not None, f"no column {header!r} in {heads}"
    keys = page.eval_on_selector_all(
        "table#branches tbody tr", f"rs => rs.map(r => r.cells[{idx}].getAttribute('data-sort'))"
    )
    return idx, [float(k) if k not in (None, "") else None for k in keys]


def _branch_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all("table#branches tbody tr", "rs => rs.map(r => r.cells[0].textContent.trim())")


@pytest.mark.parametrize("key", ["monthly_churn_rate", "active_at_start"])
def test_index_sorts_by_a_numeric_column(context: BrowserContext, month_dir: Path, key: str) -> None:
    page = _open(context, month_dir, "index").page
    header = label(key, "zh")
    before = sorted(_branch_ids(page))
    idx, values = _column(page, header)
    present = [v for v in values if v is not None]
    assert len(set(present)) >= 2, f"{header}: too few distinct values to see a sort: {values}"
    th = page.locator("table#branches thead th").nth(idx)
    for order in ("ascending", "descending"):
        th.click()
        assert th.get_attribute("aria-sort") == order
        _, values = _column(page, header)
        present = [v for v in values if v is not None]
        assert values[: len(present)] == present, f"{header}: empty cells are not last: {values}"
        assert present == sorted(present, reverse=order == "descending"), f"{header} {order}: {values}"
        assert sorted(_branch_ids(page)) == before, "sorting lost or duplicated rows"


def test_index_links_open_the_reports(context: BrowserContext, month_dir: Path) -> None:
    opened = _open(context, month_dir, "index")
    page = opened.page
    links = page.eval_on_selector_all("table#branches tbody a[href]", "as => as.map(a => [a.textContent.trim(), a.href])")
    rendered = {p.stem for p in (month_dir / "branches").glob("*.html")}
    assert {text for text, _ in links} == rendered, f"links {links} vs reports {sorted(rendered)}"
    for text, href in links:
        target = _local_file(href)
        assert target.is_file() and target.stem == text, f"{text}: {href} is not its report"
    bank = page.eval_on_selector_all("a[href$='bank.html']", "as => as.map(a => a.href)")
    assert bank and all(_local_file(h).is_file() for h in bank), f"bank report links: {bank}"
    # and a click actually opens a branch report
    text, href = links[0]
    page.locator("table#branches tbody a[href]").first.click()
    page.wait_for_load_state("load")
    assert page.url == href
    assert text in page.title()
    assert opened.errors == [] and opened.failed == [] and opened.outside == []


@pytest.mark.parametrize("which", ["bank", "branch"])
def test_the_first_screen_answers(context: BrowserContext, month_dir: Path, which: str) -> None:
    """Within the first 900 px at 1280 px: the KPI tiles, the strongest causes and (a branch) the watch list's size;
    the contents list links every section by an in-page anchor; "About this report" comes last."""
    opened = _open(context, month_dir, which)
    page = opened.page
    bottom = page.evaluate("document.querySelector('.first-screen').getBoundingClientRect().bottom + window.scrollY")
    assert 0 < bottom <= 900, f"the first screen ends at {bottom}px"
    tiles = page.eval_on_selector_all(".kpi-tile", "ts => ts.map(t => t.innerText)")
    labels = [label(k, "zh") for k in ("monthly_churn_rate", "churned_in_month", "aum_lost")]
    assert len(tiles) == 3 and all(lab in t for lab, t in zip(labels, tiles, strict=True)), tiles
    assert any(w in tiles[0] for w in ("改善", "恶化", "基本持平")) and any(a in tiles[0] for a in "▼▲≈"), tiles[0]
    assert page.locator(".answer-causes h3").count() == 1
    if which == "branch":
        watch = page.inner_text(".answer-watch")
        assert "重点关注名单" in watch and re.search(r"\d", watch), watch
    hrefs = page.eval_on_selector_all("nav.contents a", "as => as.map(a => a.getAttribute('href'))")
    ids = page.eval_on_selector_all("section.report-section[id]", "ss => ss.map(s => s.id)")
    assert hrefs and all(h.startswith("#") and h[1:] in ids for h in hrefs), (hrefs, ids)
    assert {f"#{i}" for i in ids} - {"#header"} <= set(hrefs), "a section missing from the contents"
    assert ids[-1] == "about" and page.locator("#about table.report-meta").count() == 1


def test_index_filters_by_region_and_finds_a_branch(context: BrowserContext, month_dir: Path) -> None:
    page = _open(context, month_dir, "index").page
    ids = sorted(_branch_ids(page))

    def visible() -> list[str]:
        return page.eval_on_selector_all("table#branches tbody tr:not([hidden])", "rs => rs.map(r => r.cells[0].textContent.trim())")

    first = page.eval_on_selector("table#branches tbody tr", "r => [r.cells[1].textContent.trim(), r.cells[2].textContent.trim()]")
    name, region = first
    page.fill("#branch-find", name[1:3])  # part of a name
    assert set(visible()) >= {_branch_ids(page)[0]} and len(visible()) < len(ids) or len(ids) == 1
    assert page.inner_text("#branch-count") == str(len(visible()))
    page.fill("#branch-find", "no branch is called this")
    assert visible() == []
    page.fill("#branch-find", "")
    page.select_option("#region-filter", region)
    assert visible() and all(
        page.eval_on_selector(f"xpath=//table[@id='branches']//tr[td[1][normalize-space()='{b}']]", "r => r.cells[2].textContent.trim()") == region
        for b in visible())
    page.select_option("#region-filter", "")
    assert sorted(visible()) == ids
