"""What a reader sees on a page, and which of it is in the wrong language.

Used by ``tests/report/test_language.py``: a zh page shows no English word
outside ``lang="en"`` elements and a short allow list, an en page no Chinese
outside the data's own names.  Visible text is every text node outside
``<script>``, ``<style>`` and ``<title>``, plus images' ``alt`` and inputs'
``placeholder``; pseudonyms, IDs and digests (tokens with digits) are not words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

#: English kept on purpose in a zh page: units, abbreviations and names of methods
ALLOWED_EN = frozenset({"AUM", "RM", "RMs", "HR", "CNY", "Cox", "Kaplan", "Meier", "RMST", "ID", "IDs", "OR", "CI",
                        "AUC", "p", "vs", "Efron", "KM", "PH", "Wilson", "Poisson", "log-rank", "z", "n", "d", "k",
                        "crmresearch", "metrics.json", "json", "PDF", "HTML", "Parquet", "CSV", "DuckDB", "SQL",
                        "Schoenfeld", "O", "E"})  # fmt: skip
_VOID = {"br", "img", "meta", "link", "input", "hr", "col", "source", "wbr"}
_HIDDEN = {"script", "style", "title", "template"}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'.-]*")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Piece:
    text: str
    section: str  # the id of the enclosing element with an id (a report section), or ""
    lang: str  # the nearest enclosing lang attribute


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None, str | None]] = []  # tag, lang, id
        self.pieces: list[Piece] = []

    def _where(self) -> tuple[str, str]:
        lang = next((lg for _, lg, _ in reversed(self.stack) if lg), "")
        sec = next((i for t, _, i in reversed(self.stack) if i and t == "section"), "")
        return sec, lang

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _VOID:
            sec, lang = self._where()
            lang = a.get("lang") or lang
            for k in ("alt", "placeholder", "title", "aria-label"):
                if a.get(k):
                    self.pieces.append(Piece(a[k], sec, lang))
            return
        self.stack.append((tag, a.get("lang"), a.get("id")))
        if a.get("title") or a.get("aria-label"):
            sec, lang = self._where()
            self.pieces.append(Piece(a.get("title") or a.get("aria-label") or "", sec, lang))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not data.strip() or any(t in _HIDDEN for t, _, _ in self.stack):
            return
        sec, lang = self._where()
        self.pieces.append(Piece(data.strip(), sec, lang))


def visible_text(page: str) -> list[Piece]:
    """Every visible text of an HTML page, with its section and language."""
    p = _Parser()
    p.feed(page)
    return p.pieces


def english_words(page: str, allowed: frozenset[str] = ALLOWED_EN, data_names: set[str] = frozenset()
                  ) -> list[tuple[str, Piece]]:  # fmt: skip
    """The English words a zh page shows outside ``lang="en"`` (allowed words, data names and IDs aside)."""
    out = []
    for piece in visible_text(page):
        if piece.lang.startswith("en"):
            continue
        text = piece.text
        for name in data_names:
            text = text.replace(name, " ")
        for w in _WORD.findall(text):
            w = w.rstrip(".'-")
            if not w or any(ch.isdigit() for ch in w) or w in allowed or w.lower() in allowed:
                continue
            out.append((w, piece))
    return out


def chinese_text(page: str, data_names: set[str] = frozenset()) -> list[Piece]:
    """The texts of an en page that hold Chinese characters (outside ``lang="zh"`` and the data's names)."""
    out = []
    for piece in visible_text(page):
        if piece.lang.startswith("zh"):
            continue
        text = piece.text
        for name in data_names:
            text = text.replace(name, " ")
        if _HAN.search(text):
            out.append(piece)
    return out
