"""A disclosure checker for published pages: can a reader recover a count the page hides?

It reads a page as a reader would — the numbers in its tables and the cells
that say "fewer than N" or "suppressed" — and tries what an attacker would:

* **direct**: a count below N shown in a column (or KPI row) of customers,
  churners, warnings, rows …;
* **multiplication**: a rate, share or ratio times a count (or an expected
  value) in the same row — in a KPI table, the same column — that gives back
  a whole number from 1 to N−1, the only one the rounding allows (1.22% × 82
  = 1; O/E 1.89 × expected 0.5 = 1);
* **AUM of a hidden group**: an amount shown in a line whose churners are hidden;
* **subtraction**: a column whose hidden cells are pinned down by a total
  shown on the page (the KPI table's "this month" figures, an ``all`` row of
  the same table, the index's regional roll-up), given the bounds a reader
  knows ("fewer than N" is 1 to N−1, "suppressed" is at least N).

It knows the pages' words (English headers and labels of
:mod:`crmresearch.report.reports` and :mod:`crmresearch.batch.run`), not the data:
it checks what is shown, not how it was computed (and uses none of the
package's suppression code).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

STATUS = re.compile(r"\s*(better|worse|about the same|改善|恶化|基本持平)\s*$")
FEWER = re.compile(r"^(fewer than|少于)\s*(\d+)$")
HIDDEN = {"suppressed", "已隐藏"}
COUNT = re.compile(r"^\d{1,3}(,\d{3})*$")
PERCENT = re.compile(r"^(-?\d+(?:\.(\d+))?)%$")
DECIMAL = re.compile(r"^(-?\d+\.(\d+))(\s*\(.*\))?$")  # "1.89" or "1.89 (0.50–3.20)"
AMOUNT = re.compile(r"^(CNY\s|¥)?-?[\d.,]+\s*[KMB万亿]?(元|万元)?$|^CNY ")
#: headers of columns that are ordinals or labels, not figures
SKIP_HEADERS = {"rank", "排名", "#", "days", "天数", "p", "95% ↓", "95% ↑", "branches", "支行数"}
#: words of headers (or KPI rows) that hold counts of people or records
COUNT_WORDS = ("customers", "churned", "book", "warnings", "rows", "attempts", "exposed", "orphaned", "observed",
               "contacted", "retained")  # fmt: skip


@dataclass
class Cell:
    text: str
    kind: str  # small | hidden | count | rate | decimal | amount | bound | text | empty
    value: float = math.nan
    half: float = 0.0  # half the last shown digit: the value lies in [value - half, value + half]


@dataclass
class Table:
    classes: str
    id: str
    caption: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_heads: list[str] = field(default_factory=list)  # a row's <th> (KPI tables)


def parse_cell(text: str) -> Cell:
    t = " ".join(text.split())
    t = STATUS.sub("", t).strip()
    if not t or t in ("–", "-"):
        return Cell(t, "empty")
    m = FEWER.match(t)
    if m:
        return Cell(t, "small", float(m.group(2)))
    if t in HIDDEN:
        return Cell(t, "hidden")
    if t.startswith(("below", "低于")):
        return Cell(t, "bound")
    if COUNT.match(t):
        return Cell(t, "count", float(t.replace(",", "")))
    m = PERCENT.match(t)
    if m:
        d = len(m.group(2) or "")
        return Cell(t, "rate", float(m.group(1)) / 100, 0.5 * 10**-d / 100)
    m = DECIMAL.match(t)
    if m:
        return Cell(t, "decimal", float(m.group(1)), 0.5 * 10 ** -len(m.group(2)))
    if t.startswith("CNY") or t.endswith(("万元", "亿元")):
        return Cell(t, "amount")
    return Cell(t, "text")


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.stack: list[Table] = []
        self.buf: list[str] | None = None
        self.where = ""
        self.row: list[Cell] | None = None
        self.row_head: str | None = None
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self.stack.append(Table(a.get("class") or "", a.get("id") or "", "", []))
        elif not self.stack:
            return
        elif tag == "thead":
            self.in_head = True
        elif tag == "tbody":
            self.in_head = False
        elif tag == "tr":
            self.row, self.row_head = [], None
        elif tag in ("td", "th", "caption"):
            self.buf, self.where = [], tag

    def handle_data(self, data: str) -> None:
        if self.buf is not None:
            self.buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            return
        t = self.stack[-1]
        if tag in ("td", "th", "caption") and self.buf is not None:
            text = " ".join("".join(self.buf).split())
            self.buf = None
            if tag == "caption":
                t.caption = text
            elif self.in_head:
                t.headers.append(text)
            elif tag == "th" and self.row is not None and not self.row:
                self.row_head = text
            elif self.row is not None:
                self.row.append(parse_cell(text))
        elif tag == "tr" and self.row is not None and not self.in_head:
            if self.row or self.row_head is not None:
                t.rows.append(self.row)
                t.row_heads.append(self.row_head or "")
            self.row = None
        elif tag == "table":
            self.tables.append(self.stack.pop())


def tables(page: str) -> list[Table]:
    """Every table of an HTML page, its cells parsed."""
    p = _Parser()
    p.feed(page)
    return p.tables


def _is_counts(header: str) -> bool:
    h = header.lower()
    return any(w in h for w in COUNT_WORDS) and "customer-month" not in h


def _is_denominator(header: str) -> bool:
    """A count a rate is taken of (customers, a book, warnings, customer-months …), not a numerator.

    (A watch-list customer's products held is an attribute of one person, not a group's size.)
    """
    h = header.lower()
    return "churned" not in h and "high-value" not in h and "products held" not in h


def _is_rate_of_churn(header: str) -> bool:
    """A rate whose numerator is a count of churners or contacts (not a retention share: that is 1 − it)."""
    h = header.lower()
    return not any(w in h for w in ("retained", "retention", "survival"))


def _implied(x: Cell, y: Cell) -> list[int]:
    """Whole numbers k with k / x rounding to y (x a count or an expected value, y a rate or ratio)."""
    lo, hi = (y.value - y.half) * (x.value - x.half), (y.value + y.half) * (x.value + x.half)
    return list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))


@dataclass
class Leak:
    table: str
    how: str

    def __str__(self) -> str:
        return f"[{self.table}] {self.how}"


def _lines(t: Table) -> list[tuple[str, list[tuple[str, Cell]]]]:
    """The lines a reader combines: rows (each cell with its header); in a KPI table, columns (with the row heads)."""
    heads = t.headers[1:] if t.row_heads and any(t.row_heads) else t.headers
    if "kpi-lights" in t.classes:
        out = []
        for j, h in enumerate(heads):
            out.append((h, [(t.row_heads[i], r[j]) for i, r in enumerate(t.rows) if j < len(r)]))
        return out
    return [(f"row {i + 1}", list(zip(heads, r, strict=False))) for i, r in enumerate(t.rows)]


def find_leaks(page: str, min_cell: int, regions_of: dict[str, str] | None = None) -> list[Leak]:
    """Every way this page gives back a count it hides (or shows a count below ``min_cell``).

    ``regions_of`` (branch id -> region, which a reader knows from the
    index) links a table of branches to the page's table of regions.
    """
    m = min_cell
    leaks: list[Leak] = []
    ts = tables(page)
    for t in ts:
        name = t.caption or t.id or t.classes or (t.headers[0] if t.headers else "table")
        for where, cells in _lines(t):
            cells = [(h, c) for h, c in cells if h.strip() not in SKIP_HEADERS]
            # direct: a small count shown
            for h, c in cells:
                if c.kind == "count" and 0 < c.value < m and _is_counts(h):
                    leaks.append(Leak(name, f"{where}: {h} = {c.text} is below {m}"))
            # multiplication: a rate (or ratio) times a count (or an expected value) in the same line
            has_hidden = any(c.kind in ("small", "hidden") for _, c in cells)
            for hx, x in cells:
                if x.kind not in ("count", "decimal") or x.value <= 0 or not _is_denominator(hx):
                    continue
                if x.kind == "decimal" and not has_hidden:
                    continue
                for hy, y in cells:
                    if y is x or y.kind not in ("rate", "decimal") or not _is_rate_of_churn(hy):
                        continue
                    ks = _implied(x, y)
                    if len(ks) == 1 and 1 <= ks[0] < m and (has_hidden or y.kind == "rate"):
                        leaks.append(Leak(name, f"{where}: {hy} {y.text} x {hx} {x.text} = {ks[0]}"))
            # AUM of hidden churners
            churn_hidden = any(c.kind == "small" and "churned" in h.lower() and "high-value" not in h.lower()
                               for h, c in cells)  # fmt: skip
            if churn_hidden:
                for h, c in cells:
                    if c.kind == "amount" and c.text not in ("CNY 0", "0元", "0万元"):
                        leaks.append(Leak(name, f"{where}: {h} {c.text} is the AUM of fewer than {m} churners"))
    leaks += _subtraction(ts, m, page)
    leaks += _regions_and_branches(ts, m, regions_of)
    leaks += _sentences(page, ts, m)
    return leaks


def _sentences(page: str, ts: list[Table], m: int) -> list[Leak]:
    """The plain-language summary's figures, against the counts of the KPI table (English pages)."""
    kpi = next((t for t in ts if "kpi-lights" in t.classes), None)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    pairs: list[tuple[str, str, Cell]] = []  # (what, rate text, denominator)

    def active(col: int) -> Cell | None:
        if kpi is None:
            return None
        for head, r in zip(kpi.row_heads, kpi.rows, strict=False):
            if "active" in head and col < len(r) and r[col].kind == "count":
                return r[col]
        return None

    mo = re.search(r"churn rate was (\d+(?:\.\d+)?%); it (?:rose from |fell from |was about the same as )(\d+(?:\.\d+)?%)", text)
    if mo:
        pairs += [("this month's rate", mo.group(1), active(0)), ("last month's rate", mo.group(2), active(1))]
    mo = re.search(r"([\d,]+) early warnings were raised; (\d+(?:\.\d+)?%) were contacted", text)
    if mo:
        pairs.append(("warnings contacted", mo.group(2), parse_cell(mo.group(1))))
    mo = re.search(r"lost within their first 3 months \(([\d,]+) customers\)", text)
    lo = re.search(r"Of new customers, (\d+(?:\.\d+)?%)", text)
    if mo and lo:
        pairs.append(("new customers lost", lo.group(1), parse_cell(mo.group(1))))
    leaks = []
    for what, rate, n in pairs:
        if n is None or n.kind != "count":
            continue
        ks = _implied(n, parse_cell(rate))
        if len(ks) == 1 and 1 <= ks[0] < m:
            leaks.append(Leak("summary", f"{what} {rate} x {n.text} = {ks[0]}"))
    return leaks


def _totals(ts: list[Table]) -> dict[str, float]:
    """Totals a page shows: the KPI table's "this month" counts (all customers), by the row's words."""
    out: dict[str, float] = {}
    for t in ts:
        if "kpi-lights" in t.classes:
            for head, r in zip(t.row_heads, t.rows, strict=False):
                if r and r[0].kind == "count":
                    out.setdefault(head, r[0].value)
            break
    return out


def _column_leak(name: str, header: str, cells: list[Cell], total: float, m: int) -> Leak | None:
    hidden = [c for c in cells if c.kind in ("small", "hidden")]
    if not any(c.kind == "small" for c in hidden):
        return None
    rest = total - sum(c.value for c in cells if c.kind == "count")
    k = len([c for c in hidden if c.kind == "small"])
    j = len(hidden) - k
    lo, hi = k * 1 + j * m, (k * (m - 1) if j == 0 else math.inf)
    if not lo <= rest <= hi:
        return None  # this total is not the column's (or the column is not all of it)
    # the reader's split is unique when the hidden total is at one end of its range (or one cell is hidden)
    if rest in (lo, hi) or len(hidden) == 1:
        return Leak(name, f"column {header!r}: the total {total:g} minus the cells shown leaves {rest:g} for "
                          f"{len(hidden)} hidden cell(s): each is known")  # fmt: skip
    return None


def _subtraction(ts: list[Table], m: int, page: str = "") -> list[Leak]:
    leaks: list[Leak] = []
    totals = _totals(ts)
    # the high-value KPI table (the second KPI table) and its tiers, named in its heading
    kpis = [t for t in ts if "kpi-lights" in t.classes]
    hv_total, hv_cell = None, None
    if len(kpis) > 1:
        hv_cell = next((r[0] for h, r in zip(kpis[1].row_heads, kpis[1].rows, strict=False) if "churned" in h and r), None)
        hv_total = hv_cell.value if hv_cell is not None and hv_cell.kind == "count" else None
    mo = re.search(r"High-value customers \(([^)]*)\)", page)
    hv_tiers = {x.strip() for x in mo.group(1).split(",")} if mo else set()
    churned_total = next((v for k, v in totals.items() if "churned" in k), None)
    active_total = next((v for k, v in totals.items() if "active" in k), None)
    for t in ts:
        if "kpi-lights" in t.classes or not t.rows:
            continue
        name = t.caption or t.id or "table"
        heads = t.headers
        for j, h in enumerate(heads):
            col = [r[j] for r in t.rows if j < len(r)]
            if not any(c.kind == "small" for c in col):
                continue
            candidates = []
            # an "all" row of the same table is the total of the others
            labels = [r[0].text if r else "" for r in t.rows]
            if "all" in labels:
                i = labels.index("all")
                if col[i].kind == "count":
                    candidates.append((col[i].value, [c for n, c in enumerate(col) if n != i]))
            # the month's churners (and active customers) split by group add up to the KPI table's: the
            # breakdowns, the RMs' books, the bank's regions
            partitions = t.caption.startswith(("Churned customers by", "Per relationship manager")) or (
                heads and heads[0] == "region")
            if partitions and "churned" in h.lower() and churned_total is not None:
                candidates.append((churned_total, col))
            if partitions and ("active" in h.lower() or h == "book") and active_total is not None:
                candidates.append((active_total, col))
            # by tier: the high-value tiers add up to the high-value KPI, the others to the rest
            if t.caption == "Churned customers by tier" and "churned" in h.lower() and hv_total is not None and hv_tiers:
                hv = [c for lab, c in zip(labels, col, strict=False) if lab in hv_tiers]
                rest = [c for lab, c in zip(labels, col, strict=False) if lab not in hv_tiers]
                candidates.append((hv_total, hv))
                if churned_total is not None:
                    candidates.append((churned_total - hv_total, rest))
            if (t.caption == "Churned customers by tier" and "churned" in h.lower() and hv_tiers and hv_cell is not None
                    and hv_cell.kind in ("small", "hidden")):  # fmt: skip
                # a hidden high-value KPI: its tiers add up to it, and with the other tiers to the month's churners
                hv = [c for lab, c in zip(labels, col, strict=False) if lab in hv_tiers]
                rest = [c for lab, c in zip(labels, col, strict=False) if lab not in hv_tiers]
                leak = _sum_leak(name, f"{h} (high-value KPI)", hv_cell, hv, m)
                if leak:
                    leaks.append(leak)
                if churned_total is not None:
                    candidates.append((churned_total, [*rest, hv_cell]))
            for total, cells in candidates:
                leak = _column_leak(name, h, cells, total, m)
                if leak:
                    leaks.append(leak)
    # the index: each region's branches add up to its roll-up row
    branches = next((t for t in ts if t.id == "branches"), None)
    regions = next((t for t in ts if t.id == "regions"), None)
    if branches is not None and regions is not None:
        region_col = branches.headers.index("region") if "region" in branches.headers else 2
        for r in regions.rows:
            region = r[0].text
            part = [b for b in branches.rows if len(b) > region_col and b[region_col].text == region]
            for j, h in enumerate(regions.headers[2:], start=2):
                if h not in branches.headers or j >= len(r) or r[j].kind != "count":
                    continue
                bj = branches.headers.index(h)
                leak = _column_leak(f"index, region {region}", h, [b[bj] for b in part], r[j].value, m)
                if leak:
                    leaks.append(leak)
    return leaks


def _bounds(c: Cell, m: int) -> tuple[float, float]:
    """What a reader knows of one cell: a count is itself, "fewer than N" 1 to N−1, "suppressed" 0 and up."""
    if c.kind == "count":
        return c.value, c.value
    if c.kind == "small":
        return 1.0, m - 1.0
    return 0.0, math.inf


def _sum_leak(name: str, header: str, total: Cell, members: list[Cell], m: int) -> Leak | None:
    """A sum ``total = members`` that pins a hidden cell: a hidden total from its members, or a member from both.

    (A shown total against small members is :func:`_column_leak`.)
    """
    if total.kind == "count":
        return _column_leak(name, header, members, total.value, m)
    if total.kind not in ("small", "hidden") or any(c.kind not in ("count", "small", "hidden", "empty") for c in members):
        return None
    if any(c.kind == "empty" for c in members) or not members:
        return None  # a member a reader does not know: no usable sum
    lo = sum(_bounds(c, m)[0] for c in members)
    hi = sum(_bounds(c, m)[1] for c in members)
    t_lo, t_hi = _bounds(total, m)
    lo, hi = max(lo, t_lo), min(hi, t_hi)
    if hi - lo < 1:
        return Leak(name, f"column {header!r}: the hidden total is the sum of its parts, {lo:g}")
    for i, c in enumerate(members):  # a hidden member, from the total's bounds and the others'
        if c.kind == "count":
            continue
        o_lo = sum(_bounds(x, m)[0] for j, x in enumerate(members) if j != i)
        o_hi = sum(_bounds(x, m)[1] for j, x in enumerate(members) if j != i)
        c_lo, c_hi = _bounds(c, m)
        if min(c_hi, t_hi - o_lo) - max(c_lo, t_lo - o_hi) < 1:
            return Leak(name, f"column {header!r}: a hidden part is pinned by its hidden total's bounds")
    return None


def _word(header: str) -> str | None:
    """The kind of count a header names (customers, churned …), to pair the columns of two tables."""
    h = header.lower()
    return next((w for w in ("churned", *COUNT_WORDS) if w in h), None)


def _region_sums(branches: Table, regions: Table, region_of, name: str, m: int) -> list[Leak]:
    """Each region's row against the branches of that region, column by column (same headers)."""
    leaks = []
    for r in regions.rows:
        region = r[0].text
        part = [b for b in branches.rows if region_of(b) == region]
        if not part:
            continue
        for j, h in enumerate(regions.headers[1:], start=1):
            bj = (branches.headers.index(h) if h in branches.headers else
                  next((k for k, bh in enumerate(branches.headers) if _word(bh) and _word(bh) == _word(h)), None))
            if bj is None or j >= len(r) or not _is_counts(h):
                continue
            leak = _sum_leak(f"{name}, region {region}", h, r[j], [b[bj] for b in part], m)
            if leak:
                leaks.append(leak)
    return leaks


def _regions_and_branches(ts: list[Table], m: int, regions_of: dict[str, str] | None) -> list[Leak]:
    """Hidden region rows, and the bank page's branches against its regions."""
    regions = next((t for t in ts if t.id == "regions"), None)
    branches = next((t for t in ts if t.id == "branches"), None)
    leaks: list[Leak] = []
    if branches is not None and regions is not None:  # the index (shown totals are in _subtraction)
        col = branches.headers.index("region") if "region" in branches.headers else 2
        hidden_rows = Table(regions.classes, regions.id, regions.caption, regions.headers,
                            [r for r in regions.rows if any(c.kind in ("small", "hidden") for c in r)])  # fmt: skip
        leaks += _region_sums(branches, hidden_rows, lambda b: b[col].text if len(b) > col else None, "index", m)
    if regions_of:  # the bank page: a table whose first column is the branch, and the regions table
        regions = next((t for t in ts if t.headers and t.headers[0] == "region"), None)
        branches = next((t for t in ts if t.headers and t.headers[0] == "branch"), None)
        if regions is not None and branches is not None:
            leaks += _region_sums(branches, regions, lambda b: regions_of.get(b[0].text), "bank page", m)
    return leaks
