"""Chinese text in HTML reports, offline: a subset of the bundled font embedded as CSS.

Reports are read on bank machines that may have no CJK font and no access
to any web-font host.  :func:`font_face_css` returns an ``@font-face`` rule
whose font is a subset of Noto Sans CJK SC (the face :mod:`crmresearch.viz.plots`
uses for figures, from the ``noto-cjk-sans-otc`` package, SIL Open Font
License 1.1) holding only the characters the page uses, embedded as a
``data:`` URL: the page makes no request and renders the same everywhere.

Put the family *first* in the page's font stack, e.g.
``font-family: "crmresearch-cjk", "Segoe UI", Arial, sans-serif``: the subset
holds no character below U+0250, so Latin text still falls through to the
system fonts, while Chinese is always drawn from the embedded subset.  Placed
after the Latin fonts, Chromium drew some Chinese text as missing-glyph boxes
although the font had loaded (seen in tests/report/test_browser.py).

The font is WOFF 1.0 (zlib, read by every browser since 2011), not WOFF2:
WOFF2 is about 10 % smaller but needs the ``brotli`` package (a 5 MB native
extension) and takes a second longer to compress.  The subset keeps the
glyph outlines with their hints, horizontal metrics, the character map and
the font's copyright and licence names; it drops the OpenType layout tables
(alternate and vertical forms, which horizontal Chinese text does not use)
and the vertical metrics.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

__all__ = ["CJK_FONT_FAMILY", "chinese_font_path", "font_face_css", "report_characters"]

CJK_FONT_FAMILY = "Noto Sans CJK SC"
_CJK_FONT_PACKAGE = "noto-cjk-sans-otc"

# Characters below U+0250 (Basic Latin, Latin-1 Supplement, Latin Extended-A and -B) are drawn
# by the page's Latin font, which every machine has; only the others go into the subset.
_FIRST_EMBEDDED = 0x0250
_FAMILY = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]*")
_DROPPED_TABLES = ["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx"]
_NAME_IDS = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # the defaults, and 13-14: the OFL notice and URL
_FLAVOR = "woff"


def chinese_font_path() -> Path:
    """The Noto Sans CJK collection shipped by the ``noto-cjk-sans-otc`` package.

    Returns
    -------
    Path
        The ``.ttc`` font file inside the installed package.

    Raises
    ------
    ImportError
        When the package is missing (it is a dependency of crmresearch).

    Examples
    --------
    >>> chinese_font_path().name
    'NotoSansCJK-Regular.ttc'
    """
    try:
        import noto_cjk_sans_otc
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ImportError(f"Chinese figures need the font package {_CJK_FONT_PACKAGE} "
                          f"(pip install {_CJK_FONT_PACKAGE})") from exc  # fmt: skip
    return Path(str(noto_cjk_sans_otc.FONT_PATH))


@lru_cache(maxsize=1)
def _sc_face() -> tuple[str, int, frozenset[int]]:
    """The collection's path, the index of its Noto Sans CJK SC face, and the code points it maps.

    Read once per process (about 0.1 s): which face is SC comes from the
    name table (family name ID 1), not from a hard-coded index.
    """
    path = str(chinese_font_path())
    with TTCollection(path, lazy=True) as collection:
        for index, font in enumerate(collection.fonts):
            if font["name"].getDebugName(1) == CJK_FONT_FAMILY:
                return path, index, frozenset(font.getBestCmap())
    raise LookupError(f"{path} has no face named {CJK_FONT_FAMILY!r}")


@lru_cache(maxsize=32)
def _subset_font(chars: str) -> bytes:
    """WOFF bytes of the SC face cut down to ``chars`` (sorted, distinct, all in the font)."""
    path, index, _ = _sc_face()
    options = subset.Options()
    options.flavor = _FLAVOR
    options.layout_features = []
    options.drop_tables = [*options.drop_tables, *_DROPPED_TABLES]
    options.name_IDs = _NAME_IDS
    options.desubroutinize = True  # smaller once compressed, and faster than pruning subroutines
    # fixed timestamps and the full font's bounding boxes: same characters, same bytes
    with TTFont(
        path,
        fontNumber=index,
        lazy=True,
        recalcTimestamp=False,
        recalcBBoxes=False,
    ) as font:
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        font.flavor = _FLAVOR
        out = io.BytesIO()
        font.save(out)
    return out.getvalue()


@lru_cache(maxsize=1)
def report_characters() -> str:
    """Every character of the package's own texts (labels, titles, notes, messages, glossary), sorted.

    Read from the string literals of the package's source files (parsed,
    not imported: no plotting library is loaded for it), so a text built
    inside a function (a caveat, a column header, a summary sentence) is
    covered as well as the label tables.  Passed as ``cover`` to
    :func:`font_face_css` with the run's branch and region names, it gives
    every page of a run one font subset: a page needs its own only when the
    data brings characters the package and those names do not have.
    """
    import ast

    chars: set[str] = set()
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                chars.update(c for c in node.value if ord(c) >= _FIRST_EMBEDDED)
    return "".join(sorted(chars))


def font_face_css(text: str, family: str = "crmresearch-cjk", cover: str = "",
                  cache_dir: str | Path | None = None) -> str:  # fmt: skip
    """An ``@font-face`` rule embedding the Chinese font, cut down to the characters of ``text``.

    The font is a subset of Noto Sans CJK SC holding the characters of
    ``text`` from U+0250 on (Chinese characters, full-width punctuation,
    Chinese quotation marks, ...) that the font has; ASCII and the other
    Latin letters are left to the page's Latin font.  It is embedded as a
    base64 ``data:`` URL in WOFF format, so the page needs no font host and
    no installed CJK font.  The output depends only on the characters used
    (not their order or count), and is the same bytes on every call; results
    are cached per process.

    Parameters
    ----------
    text : str
        All the text of the page (or more): every character that may be
        drawn in the family.
    family : str, default "crmresearch-cjk"
        The CSS family name to declare; letters, digits, spaces, ``-`` and
        ``_`` only.
    cover : str, default ""
        More characters to put in the font, e.g. :func:`report_characters`
        and the run's branch names: pages whose characters all lie in
        ``text``'s own plus ``cover`` share one font, subset once per
        process (about 1 s saved per page), at the cost of a larger page.
    cache_dir : str or Path, optional
        A folder where subsets are kept between processes and runs (one
        file per character set, font file and family; written atomically):
        the workers of a report run, and next month's run, reuse the subset
        instead of cutting it again (about 2 s each).

    Returns
    -------
    str
        One line, ``@font-face { font-family: "<family>"; src:
        url(data:font/woff;base64,...) format("woff"); }``, or ``""`` when
        ``text`` has no character for the font (ASCII or Latin only, or only
        characters the font lacks, such as emoji).

    Raises
    ------
    ValueError
        When ``family`` has other characters (it is written into the CSS).

    Notes
    -----
    About 1 s and 135 kB of WOFF (180 kB of CSS) for a page with 600
    distinct Chinese characters; most of the time is fontTools reading the
    glyph outlines.  Put the family first in the page's font stack:
    ``font-family: "crmresearch-cjk", Arial, sans-serif`` (see the module notes).

    Examples
    --------
    >>> css = font_face_css("客户流失率 (churn) 12.5%")
    >>> css.startswith('@font-face { font-family: "crmresearch-cjk"; '
    ...                'src: url(data:font/woff;base64,d09GRk9UVE8')
    True
    >>> css.endswith(') format("woff"); }')
    True
    >>> font_face_css("Churn rate 12.5%")
    ''
    """
    if not _FAMILY.fullmatch(family):
        raise ValueError(f"font family {family!r}: use letters, digits, spaces, '-' and '_' only")
    *_, cmap = _sc_face()
    own = {c for c in set(text) if ord(c) >= _FIRST_EMBEDDED and ord(c) in cmap}
    if not own:
        return ""
    chars = "".join(sorted(own | {c for c in cover if ord(c) >= _FIRST_EMBEDDED and ord(c) in cmap}))
    if cache_dir is None:
        return _css(chars, family)
    return _css_on_disk(chars, family, str(cache_dir))


@lru_cache(maxsize=32)
def _css_on_disk(chars: str, family: str, cache_dir: str) -> str:
    """:func:`_css`, kept in ``cache_dir`` (keyed by the font file, the options, the family and the characters)."""
    path, index, _ = _sc_face()
    st = os.stat(path)
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{index}\0{_FLAVOR}\0{_DROPPED_TABLES}\0"
                         f"{_NAME_IDS}\0{family}\0{chars}".encode()).hexdigest()[:32]  # fmt: skip
    target = Path(cache_dir) / f"cjk-{key}.css"
    try:
        return target.read_text(encoding="ascii")
    except OSError:
        pass
    css = _css(chars, family)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".cjk-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(css)
        os.replace(tmp, target)
    except OSError:  # a read-only or full cache folder: the subset is still returned
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return css


@lru_cache(maxsize=32)
def _css(chars: str, family: str) -> str:
    data = base64.b64encode(_subset_font(chars)).decode("ascii")
    return (
        f'@font-face {{ font-family: "{family}"; '
        f'src: url(data:font/{_FLAVOR};base64,{data}) format("{_FLAVOR}"); }}'
    )
