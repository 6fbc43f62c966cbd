"""The index page of a month: every branch's KPIs, with the small-cell suppression of the reports."""

from __future__ import annotations

import pandas as pd

from crmresearch.batch.engines import _page
from crmresearch.core.suppression import Suppression, suppress_nested
from crmresearch.viz.summary import render

# --------------------------------------------------------------------------- index page

_SORT_SCRIPT = """
(function () {
  function key(td) {
    var v = td.getAttribute("data-sort");
    if (v === null) v = td.textContent.trim();
    if (v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  var region = document.getElementById("region-filter"), find = document.getElementById("branch-find");
  function filter() {  // rows of the branches table: region (third cell) and ID or name (first two) contain the text
    var r = region ? region.value : "", q = find ? find.value.trim().toLowerCase() : "", shown = 0;
    var table = document.getElementById("branches");
    if (!table) return;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var c = row.cells, who = (c[0].textContent + " " + c[1].textContent).toLowerCase();
      var ok = (!r || c[2].textContent.trim() === r) && (!q || who.indexOf(q) >= 0);
      row.hidden = !ok; if (ok) shown++;
    });
    var n = document.getElementById("branch-count"); if (n) n.textContent = String(shown);
  }
  if (region) region.addEventListener("change", filter);
  if (find) find.addEventListener("input", filter);
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x === null || y === null) return (x === null) - (y === null);  // empty last
          var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") th.click(); });
    });
  });
})();
"""


def _cell(text: object, sort: object = None, cls: str = "", **extra: str) -> dict:
    """One cell of an index table, as data for the template (``href``: a link, ``span``: a class of a span)."""
    return {"text": text, "sort": sort, "cls": cls, **extra}


def _hide(table: pd.DataFrame, count: str, derived: list[str], mask: Suppression, min_cell: int,
          by: str | None = None) -> Suppression:  # fmt: skip
    """``mask`` with the cells of ``count`` (and ``derived``) that suppression hides, within each ``by`` group."""
    from crmresearch.core.suppression import suppress_counts

    groups = [table.index] if by is None else [g.index for _, g in table.groupby(by, dropna=False, sort=False)]
    for idx in groups:
        part = Suppression(mask.hidden.loc[idx], mask.small.loc[idx])
        part = suppress_counts(table.loc[idx], count, min_cell=min_cell, derived=derived, total_shown=True, prior=part)
        hidden, small = mask.hidden.copy(), mask.small.copy()
        hidden.loc[idx, part.hidden.columns] = part.hidden
        small.loc[idx, part.small.columns] = part.small
        mask = Suppression(hidden.fillna(False).astype(bool), small.fillna(False).astype(bool))
    return mask


# the churn rate against the bank's (the reports' three-way rule), shown by colour and a word
_VS_BANK = {"better": "▼", "same": "≈", "worse": "▲"}


def _fmt(value: object, kind: str, language: str, hidden: bool, small: bool, min_cell: int) -> tuple[str, object]:
    """Display text and sort key of one cell (hidden cells, from the mask, show words and sort last)."""
    from crmresearch.viz.i18n import format_amount, format_count, format_percent, label

    if hidden:
        return label("fewer_than", language, n=min_cell) if small else label("suppressed", language), ""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–", ""
    f = {"count": format_count, "percent": format_percent, "amount": format_amount}[kind]
    return f(float(value), language), value


def _regions_suppressed(rows: pd.DataFrame, month: str | None, language: str, min_cell: int
                        ) -> tuple[pd.DataFrame, pd.Series, list[str], Suppression, Suppression]:  # fmt: skip
    """The regional roll-up of the branch rows and both tables' suppression, computed as one.

    Each region's branches add up to its roll-up row, and the regions to the
    bank: a hidden branch is not given back by its region, nor a hidden
    region by its branches.  Adds ``_region`` (the region, "not recorded"
    filled in) to ``rows``.
    """
    from crmresearch.viz.i18n import label

    # regional roll-up: sums over the branches of each region (customers from the bank stage)
    reg = rows.assign(region=rows["region"].fillna(label("not_recorded", language)))
    have = reg["status"].eq("done") & reg["active_at_start"].notna()
    agg = reg.groupby("region", sort=True).agg(branches=("branch_id", "size"), customers=("customers", "sum"))
    kp = reg[have].groupby("region").agg(reported=("branch_id", "size"), active_at_start=("active_at_start", "sum"),
                                         churned_in_month=("churned_in_month", "sum"))  # fmt: skip
    agg = agg.join(kp).reset_index()
    complete = agg["reported"].fillna(0).eq(agg["branches"])
    agg.loc[~complete, ["active_at_start", "churned_in_month"]] = float("nan")  # a partial sum would mislead
    agg["monthly_churn_rate"] = agg["churned_in_month"] / agg["active_at_start"].where(agg["active_at_start"] > 0)
    rcols = ["customers", "active_at_start", "churned_in_month", "monthly_churn_rate"] if month else ["customers"]
    rows["_region"] = reg["region"]
    hidden, rhidden = Suppression.none(rows), Suppression.none(agg)
    linked = [("customers", [], [])]
    if month is not None:
        linked += [("active_at_start", ["churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained"],
                    ["churned_in_month", "monthly_churn_rate"]),
                   ("churned_in_month", ["monthly_churn_rate", "aum_lost", "aum_drained"], ["monthly_churn_rate"])]  # fmt: skip
    for count, derived, rderived in linked:
        hidden, rhidden = suppress_nested(rows, agg.rename(columns={"region": "_region"}), count, by="_region",
                                          min_cell=min_cell, derived=derived, totals_derived=rderived,
                                          prior=(hidden, rhidden))  # fmt: skip
    return agg, complete, rcols, hidden, rhidden


def _region_rows(agg: pd.DataFrame, rcols: list[str], rhidden: Suppression, language: str,
                 min_cell: int) -> list[list[dict]]:  # fmt: skip
    """The regions' table rows, as data for the template."""
    rkinds = {"customers": "count", "active_at_start": "count", "churned_in_month": "count",
              "monthly_churn_rate": "percent"}  # fmt: skip
    out = []
    for i, r in agg.iterrows():
        cells = [_cell(str(r["region"]), None, "text"), _cell(str(int(r["branches"])), int(r["branches"]))]
        for c in rcols:
            text, key = _fmt(r[c], rkinds[c], language, rhidden.is_hidden(i, c), rhidden.is_small(i, c), min_cell)
            cells.append(_cell(text, key))
        out.append(cells)
    return out


def _branch_rows(rows: pd.DataFrame, shown: list[str], hidden: Suppression, language: str,
                 min_cell: int) -> list[list[dict]]:  # fmt: skip
    """The branches' table rows, as data for the template (a branch links to its report when it is done)."""
    from crmresearch.viz.i18n import label

    kinds = {"customers": "count", "active_at_start": "count", "churned_in_month": "count", "monthly_churn_rate": "percent",
             "aum_lost": "amount", "aum_drained": "amount", "hv_churned": "count"}  # fmt: skip
    out = []
    for i, r in rows.iterrows():
        bid = str(r["branch_id"])
        link = {"href": f"branches/{bid}.html"} if r["status"] == "done" else {}
        cells = [_cell(bid, r["branch_id"], "text", **link),
                 _cell(str(r["branch_name"] if pd.notna(r["branch_name"]) else ""), None, "text"),
                 _cell(str(r["region"] or ""), None, "text")]  # fmt: skip
        for c in shown:
            text, key = _fmt(r[c], kinds[c], language, hidden.is_hidden(i, c), hidden.is_small(i, c), min_cell)
            vs = r.get("vs_bank") if c == "monthly_churn_rate" and not hidden.is_hidden(i, c) else None
            if isinstance(vs, str) and vs in _VS_BANK:  # coloured against the bank, with the word beside it
                cells.append(_cell(text, key, badge=f"{_VS_BANK[vs]} {label(vs, language)}", badge_cls=f"vs-{vs}"))
            else:
                cells.append(_cell(text, key))
        status = r["status"]
        cls = {"done": "tl-same", "failed": "tl-worse"}.get(status, "tl-na")
        cells.append(_cell(label("status_" + status, language), status, "text", span=cls))
        out.append(cells)
    return out


def render_index(rows: pd.DataFrame, *, month: str | None, language: str, min_cell: int,
                 meta: dict[str, str], bank_link: bool, font_cover: str = "",
                 font_cache: str | None = None) -> str:  # fmt: skip
    """The index page: every branch's KPIs (sortable, linked), the regional roll-up, a link to the bank summary.

    Counts below ``min_cell`` read "fewer than N" (with their rate and
    amounts), and a second cell is hidden where a shown total (a region's,
    the bank's) would give one away (:func:`crmresearch.core.suppression.suppress_counts`,
    applied within each region for branches and across regions for the
    roll-up).  Every text from the data is HTML-escaped; the page is
    self-contained (inline CSS, inline sorting script, no external request).

    Parameters
    ----------
    rows : DataFrame
        One row per branch: ``branch_id, branch_name, region, customers,
        status`` (``done``, ``failed``, ``not_run``) and the KPIs
        ``active_at_start, churned_in_month, monthly_churn_rate, aum_lost,
        aum_drained, hv_churned`` (NaN where unknown); optionally
        ``vs_bank``, the churn rate against the bank's (``better``,
        ``same``, ``worse``: the traffic light of the reports), shown as a
        colour-blind-safe colour with its word (not for a hidden rate).
    month : str or None
        ``YYYY-MM``; None for a flat extract.
    language : {"en", "zh"}
    min_cell : int
        The minimum cell size.
    meta : dict
        Lines shown under the title (label -> value), e.g. data as-of.
    bank_link : bool
        Link ``bank.html``.

    Returns
    -------
    str

    Examples
    --------
    >>> rows = pd.DataFrame({"branch_id": ["B001"], "branch_name": ["<b>North</b>"], "region": ["N"],
    ...                      "customers": [300], "status": ["done"], "active_at_start": [120],
    ...                      "churned_in_month": [4], "monthly_churn_rate": [4 / 120], "aum_lost": [1e5],
    ...                      "aum_drained": [2e5], "hv_churned": [0]})
    >>> page = render_index(rows, month="2026-10", language="en", min_cell=10, meta={}, bank_link=True)
    >>> "&lt;b&gt;North&lt;/b&gt;" in page, "fewer than 10" in page, "<script src" in page
    (True, True, False)
    """
    from crmresearch.viz.i18n import format_month, label

    rows = rows.reset_index(drop=True).copy()
    kpi_cols = ["active_at_start", "churned_in_month", "monthly_churn_rate", "aum_lost", "aum_drained", "hv_churned"]
    for c in kpi_cols:
        if c not in rows:
            rows[c] = float("nan")
    rows["region"] = rows["region"].where(rows["region"].notna(), None)
    agg, complete, rcols, hidden, rhidden = _regions_suppressed(rows, month, language, min_cell)
    hidden = _hide(rows, "hv_churned", [], hidden, min_cell, by="_region")
    when = format_month(month, language) if month else label("index_snapshot", language)
    title = f"{label('index_title', language)} — {when}"
    # a flat extract has no month: its branches show their customers instead of monthly KPIs
    shown = kpi_cols if month is not None else ["customers"]
    heads = ["index_branch_id", "index_branch_name", "index_region",
             *({"customers": "index_customers_extract", "hv_churned": "index_hv_churned"}.get(c, c) for c in shown),
             "index_status"]  # fmt: skip
    rheads = ["index_region", "index_branches_count", "index_customers_extract", "active_at_start",
              "churned_in_month", "monthly_churn_rate"][:2 + len(rcols)]  # fmt: skip
    regions = sorted({str(x) for x in rows["region"].dropna()})
    body = render("index.html.j2", title=title, meta=[(k, str(v)) for k, v in meta.items()],
                  regions=regions, filter_region=label("index_filter_region", language),
                  all_regions=label("index_all_regions", language), find_label=label("index_find", language),
                  find_placeholder=label("index_find_placeholder", language),
                  shown_label=label("index_shown", language), n_branches=len(rows),
                  vs_note=label("index_vs_bank_note", language) if month is not None else None,
                  sep="：" if language == "zh" else ": ",
                  bank_link=label("index_bank_link", language) if bank_link else None,
                  flat_note=label("index_no_kpis_flat", language) if month is None else None,
                  branches_title=label("index_branches", language), sort_hint=label("index_sort_hint", language),
                  branch_heads=[label(h, language) for h in heads],
                  branch_rows=_branch_rows(rows, shown, hidden, language, min_cell),
                  regions_title=label("index_regions", language), region_heads=[label(h, language) for h in rheads],
                  region_rows=_region_rows(agg, rcols, rhidden, language, min_cell),
                  partial_note=label("index_partial_regions", language) if month is not None and not complete.all()
                  else None, suppression_note=label("index_suppression_note", language, n=min_cell)).rstrip("\n")  # fmt: skip
    return _page(title, body, language, script=_SORT_SCRIPT, font_cover=font_cover, font_cache=font_cache)
