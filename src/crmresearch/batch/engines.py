"""From an executed notebook to a published page: nbconvert's HTML export, the page shell and its fonts."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from markupsafe import Markup

from crmresearch.batch.guards import HIDE_TAG
from crmresearch.batch.kernels import prestart_warm_kernel
from crmresearch.viz.summary import render

# --------------------------------------------------------------------------- HTML


# The embedded CJK subset (fonts.font_face_css) comes first: it holds no Latin letters, so Latin
# text still falls through to the system fonts, while Chinese never depends on the browser's
# per-character fallback (headless Chromium on Linux drew whole runs as boxes when the family
# came after system-ui).
_FONT_STACK = ('"crmresearch-cjk", system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
               '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif')  # fmt: skip

STYLE = f"""
html {{ -webkit-text-size-adjust: 100%; }}
body {{ font-family: {_FONT_STACK}; color: #1f2328; background: #fff; line-height: 1.5;
        max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; font-size: 15px; }}
h1 {{ font-size: 1.7rem; margin: 0.5rem 0 0.75rem; }}
h2 {{ font-size: 1.3rem; margin: 2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid #d0d7de; }}
h3 {{ font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }}
a {{ color: #0b5cad; }}
a.anchor-link {{ display: none; }}
p, li {{ max-width: 75ch; }}
img, svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.92rem; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.3rem 0.55rem; vertical-align: top; }}
th {{ background: #f0f3f6; text-align: left; font-weight: 600; }}
td {{ text-align: right; }}
td:first-child, td.text {{ text-align: left; }}
tbody tr:nth-child(even) {{ background: #fafbfc; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; padding: 0.3rem 0; }}
.output_area pre, pre {{ white-space: pre-wrap; font-size: 0.85rem; }}
.tl-better {{ color: #1a7f37; background: #dafbe1; }}
.tl-worse {{ color: #b42318; background: #ffebe9; }}
.tl-same {{ color: #57606a; background: #eaeef2; }}
.tl-na {{ color: #8c959f; background: #f6f8fa; }}
.tl-better, .tl-worse, .tl-same, .tl-na {{ border-radius: 0.3rem; padding: 0.05rem 0.35rem; }}
.note, .meta {{ color: #57606a; font-size: 0.88rem; }}
table.report-meta td {{ text-align: left; overflow-wrap: anywhere; }}
.first-screen {{ margin: 0.4rem 0 0.6rem; }}
.kpi-tiles {{ display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 0.4rem 0; }}
.kpi-tile {{ flex: 1 1 14rem; border: 1px solid #d0d7de; border-radius: 0.4rem; padding: 0.5rem 0.7rem; }}
.tile-label {{ color: #57606a; font-size: 0.88rem; }}
.tile-value {{ font-size: 1.6rem; font-weight: 600; line-height: 1.25; }}
.tile-vs {{ list-style: none; padding: 0; margin: 0.25rem 0 0; font-size: 0.85rem; }}
.tile-vs li {{ margin: 0.1rem 0; border-radius: 0.3rem; padding: 0.05rem 0.35rem; max-width: none; }}
.tile-ref {{ color: #57606a; }}
.answer-row {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
.answer-causes {{ flex: 3 1 28rem; }} .answer-causes h3 {{ margin: 0.6rem 0 0.3rem; }}
.answer-causes ol {{ margin: 0; padding-left: 1.4rem; }}
.answer-watch {{ flex: 1 1 12rem; margin-top: 0.8rem; font-weight: 600; border: 1px solid #d0d7de;
                 border-radius: 0.4rem; padding: 0.5rem 0.7rem; }}
nav.contents {{ font-size: 0.9rem; margin: 0.6rem 0; padding: 0.4rem 0.6rem; background: #f6f8fa;
                border-radius: 0.4rem; }}
.contents-title {{ font-weight: 600; }}
table.sortable th {{ cursor: pointer; user-select: none; }}
.vs-better {{ background: #d6e9f8; }} .vs-better .vs-word {{ color: #0b4f8a; }}
.vs-worse {{ background: #fbe3cf; }} .vs-worse .vs-word {{ color: #8a3b00; }}
.vs-same .vs-word {{ color: #57606a; }}
.vs-word {{ font-size: 0.82rem; white-space: nowrap; }}
.index-filter {{ margin: 0.4rem 0; }} .index-filter label {{ margin-right: 1rem; }}
.index-filter input, .index-filter select {{ font: inherit; padding: 0.15rem 0.3rem; }}
table.sortable th[aria-sort="ascending"]::after {{ content: " \\25B2"; }}
table.sortable th[aria-sort="descending"]::after {{ content: " \\25BC"; }}
@page {{ size: A4; margin: 14mm; }}
@media print {{
  body {{ max-width: none; margin: 0; padding: 0; font-size: 11pt; }}
  a {{ color: inherit; text-decoration: none; }}
  table, figure, img, .summary, .kpi-tile, .first-screen {{ break-inside: avoid; }}
  h2, h3 {{ break-after: avoid; }}
  table.sortable th {{ cursor: auto; }}
  table.sortable th::after, a.anchor-link, .no-print {{ display: none !important; }}
}}
"""


def _page(title: str, body: str, language: str, script: str = "", font_cover: str = "",
          font_cache: str | None = None) -> str:  # fmt: skip
    """A complete, self-contained HTML page: inline CSS (and an embedded CJK font subset when needed)."""
    css = STYLE
    try:
        from crmresearch.viz.fonts import font_face_css

        css = font_face_css(title + body, cover=font_cover, cache_dir=font_cache) + "\n" + css
    except ImportError:  # pragma: no cover - fonts.py not installed yet
        pass
    return render("page.html.j2", lang="zh-CN" if language == "zh" else "en", title=title, css=Markup(css),
                  body=Markup(body), script=Markup(script))  # fmt: skip


def font_cover(language: str, names: Iterable[object] = ()) -> str:
    """The characters every page of a run shares one font for: the reports' fixed texts and the given names.

    For Chinese pages, every character of the fixed texts; for English
    pages only their non-CJK ones (dashes, signs), so an English page
    embeds no Chinese it does not show.  Pages whose characters lie within
    this set share one font subset (made once per worker process).
    """
    from crmresearch.viz.fonts import report_characters

    fixed = report_characters()
    if language != "zh":
        fixed = "".join(c for c in fixed if ord(c) < 0x2E80)
    extra = {c for n in names if isinstance(n, str) for c in n if ord(c) >= 0x0250}
    return "".join(sorted(set(fixed) | extra))


_LOCAL = threading.local()


def _exporter():
    """This thread's nbconvert exporter (its templates compiled once, on first use)."""
    from nbconvert import HTMLExporter

    if getattr(_LOCAL, "exporter", None) is None:
        _LOCAL.exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                                       exclude_output_prompt=True)  # fmt: skip
    return _LOCAL.exporter


def prepare_worker() -> None:
    """Get a local worker ready before its first report: start its warm kernel, warm up the renderer.

    The kernel starts in the background (:func:`prestart_warm_kernel`);
    meanwhile nbconvert's templates are compiled on an empty notebook.  Run
    when the worker spawns, while the parent reads or builds the month bundle.

    Examples
    --------
    >>> prepare_worker()  # doctest: +SKIP
    """
    import nbformat

    prestart_warm_kernel()
    _exporter().from_notebook_node(nbformat.v4.new_notebook())


def _shared_font(cover: str, font_cache: str) -> None:
    """Cut the run's shared font subset once, before the reports (their workers read it from ``font_cache``)."""
    from crmresearch.viz.fonts import font_face_css

    font_face_css(cover, cover=cover, cache_dir=font_cache)


def render_html(executed_nb: str | Path, title: str, language: str = "en", font_cover: str = "",
                font_cache: str | None = None) -> str:  # fmt: skip
    """An executed notebook as one self-contained HTML page: outputs only, no code, no external request.

    The body comes from nbconvert's ``basic`` template (outputs and markdown,
    no code cells, no prompts, figures as embedded ``data:`` images); it is
    wrapped in a minimal page with an inline stylesheet and, when the page
    holds Chinese text, an embedded subset of the Chinese font
    (:func:`crmresearch.viz.fonts.font_face_css`).  Messages the kernel wrote to
    stderr (warnings) stay in the audit notebook, not in the page, and so do
    cells tagged ``hide-in-report`` (:data:`HIDE_TAG`: notes for the analyst
    who opens the notebook, such as how to run it).

    Parameters
    ----------
    executed_nb : str, Path or nbformat.NotebookNode
        The notebook executed by papermill (a node is changed in place).
    title : str
        The page title (escaped here).
    language : {"en", "zh"}
        The page's ``lang``.
    font_cover : str
        More characters for the embedded font (:func:`font_cover`): pages
        of a run share one font subset.
    font_cache : str, optional
        Where font subsets are kept between processes and runs
        (:func:`crmresearch.viz.fonts.font_face_css`'s ``cache_dir``).

    Returns
    -------
    str

    Examples
    --------
    >>> page = render_html("reports/2026-10/notebooks/B001.ipynb", "B001 — 2026-10")  # doctest: +SKIP
    >>> "<script src" in page  # doctest: +SKIP
    False
    """
    import nbformat

    nb = executed_nb if isinstance(executed_nb, nbformat.NotebookNode) else nbformat.read(str(executed_nb), as_version=4)
    nb.cells = [c for c in nb.cells if HIDE_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:  # papermill gives its parameters cell a random id: the page shows the same one each run
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]  # fmt: skip
    body, _ = _exporter().from_notebook_node(nb)
    return _page(title, body, language, font_cover=font_cover, font_cache=font_cache)
