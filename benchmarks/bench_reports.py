"""Report speed against the floor of issue 5 ("Speed"), side by side in one run on this machine.

(a) floor: papermill executing ``benchmarks/floor.ipynb`` (imports pandas, lifelines, seaborn,
    matplotlib, draws one plot) in a fresh kernel, plus nbconvert to HTML; a few repetitions.
(b) one branch report of a 5,000-customer branch through the real runner (bank stage already
    cached; only the branch stage is timed; ``--branch``).
(c) a month of B branches x 5,000 customers with 2 workers: bank stage, branch stage (the B branch
    reports) and the bank summary report timed separately (from the run's manifest).

(d) with ``--pdf``: the month again, bundle cached, without and with ``crmresearch report --pdf``
    one after the other (``--pdf-pairs`` times, alternating); the seconds per report that the PDF
    adds (branch stage and mean report duration, from the manifests), and the print's own time in the
    run (``pdf_seconds`` of each report in the manifest: free of the run-to-run spread of the other
    two). Target: <= 1.0 s per report.

Targets: (b) <= 1.5 x floor; (c) branch stage <= 1.5 x (floor x B / 2).

    .venv/bin/python benchmarks/bench_reports.py --branches 20      # quick check
    .venv/bin/python benchmarks/bench_reports.py                    # B = 200
    .venv/bin/python benchmarks/bench_reports.py --branches 40 --pdf --skip-single   # the PDF's cost

Results: a table on stdout and ``benchmarks/out/bench_reports-<date>.json`` (machine info included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPB = 5000


def machine() -> dict:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        ram = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": ram, "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


def floor(reps: int, work: Path) -> list[float]:
    """Seconds per floor report: papermill (fresh kernel) + nbconvert HTML."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    times = []
    for i in range(reps):
        t = time.perf_counter()
        out = work / f"floor-{i}.ipynb"
        pm.execute_notebook(str(HERE / "floor.ipynb"), str(out), kernel_name="python3", progress_bar=False)
        HTMLExporter(template_name="basic").from_notebook_node(nbformat.read(str(out), as_version=4))
        times.append(time.perf_counter() - t)
    return times


def run(args: list[str]) -> dict:
    """Run ``crmresearch report``; wall time and the peak resident memory of its processes (sampled every 0.2 s).

    ``peak_process_gib`` is the largest any one process of the run reached (the
    client, a worker, a report kernel); ``peak_total_gib`` the largest sum over
    all of them at one moment.
    """
    import psutil

    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crmresearch.cli", "report", *args],
                                stdout=subprocess.DEVNULL, stderr=err, text=True)  # fmt: skip
        top = psutil.Process(proc.pid)
        peak_one = peak_all = 0
        while proc.poll() is None:
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            rss = []
            for p in tree:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak_one, peak_all = max(peak_one, max(rss, default=0)), max(peak_all, sum(rss))
            time.sleep(0.2)
        wall = time.perf_counter() - t
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        sys.exit(f"crmresearch report failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall": wall, "stderr": stderr, "peak_process_gib": peak_one / 2**30, "peak_total_gib": peak_all / 2**30}


def pdf_pairs(common: list[str], work: Path, month: str, workers: int, pairs: int) -> dict:
    """(d) The month without and with ``--pdf``, alternating, bundle cached: what the PDF adds per report."""
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for i in range(pairs):
        for kind in ("without", "with"):
            out = work / f"reports-pdf-{kind}-{i}"
            r = run([*common, "--out", str(out), "--workers", str(workers), *(["--pdf"] if kind == "with" else [])])
            man = json.loads((out / month / "manifest.json").read_text())
            per = [v["duration_seconds"] for k, v in man["reports"].items() if k not in ("bank", "index")]
            prints = [v["pdf_seconds"] for k, v in man["reports"].items() if k not in ("bank", "index")
                      and v.get("pdf_seconds") is not None]  # fmt: skip
            runs[kind].append({"wall": r["wall"], "branch_stage_seconds": man["branch_stage_seconds"],
                               "reports": man["branch_stage_reports"], "mean_report_seconds": statistics.mean(per),
                               "bank_summary_seconds": man.get("bank_summary_seconds"),
                               "pdf_seconds_mean": statistics.mean(prints) if prints else None,
                               "pdf_seconds_max": max(prints) if prints else None})  # fmt: skip
            print(f"(d) {kind} --pdf: branch stage {man['branch_stage_seconds']:.1f} s, "
                  f"mean report {statistics.mean(per):.2f} s", file=sys.stderr)  # fmt: skip
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("branch_stage_seconds", "mean_report_seconds")}
           for k, v in runs.items()}  # fmt: skip
    n = runs["with"][0]["reports"]
    return {"runs": runs, "stage_without": med["without"]["branch_stage_seconds"],
            "stage_with": med["with"]["branch_stage_seconds"],
            "added_per_report_stage": (med["with"]["branch_stage_seconds"] - med["without"]["branch_stage_seconds"])
            * workers / n,
            "added_per_report_duration": med["with"]["mean_report_seconds"] - med["without"]["mean_report_seconds"],
            "pdf_seconds_mean": statistics.median(r["pdf_seconds_mean"] for r in runs["with"]),
            "pdf_seconds_max": max(r["pdf_seconds_max"] for r in runs["with"])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branches", type=int, default=200, help="B, branches of the month run (default 200)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--floor-reps", type=int, default=3)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--language", default="zh", choices=["en", "zh"])
    ap.add_argument("--work", type=Path, default=None, help="folder for data, cache and reports (default: temporary)")
    ap.add_argument("--skip-single", action="store_true", help="skip (b)")
    ap.add_argument("--customers-per-branch", type=int, default=CPB)
    ap.add_argument("--pdf", action="store_true", help="(d): the month without and with --pdf, side by side")
    ap.add_argument("--pdf-pairs", type=int, default=1, help="(d): pairs of runs (default 1)")
    a = ap.parse_args()

    from crmresearch.core.privacy import new_key_file
    from crmresearch.data.demo import DemoConfig, write_demo_bank

    work = a.work or Path(tempfile.mkdtemp(prefix="bench-reports-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", file=sys.stderr)
    res: dict = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
                 "branches": a.branches, "customers_per_branch": a.customers_per_branch, "workers": a.workers, "language": a.language}  # fmt: skip

    # (a) the floor
    ft = floor(a.floor_reps, work)
    fmean = statistics.mean(ft)
    res["floor"] = {"seconds": ft, "mean": fmean, "stdev": statistics.stdev(ft) if len(ft) > 1 else 0.0}
    print(f"floor: {fmean:.2f} s (runs {', '.join(f'{x:.2f}' for x in ft)})", file=sys.stderr)

    # data
    t = time.perf_counter()
    bank = work / (f"bank-{a.branches}" if a.customers_per_branch == CPB else f"bank-{a.branches}x{a.customers_per_branch}")
    if not (bank / "customers.parquet").exists():
        write_demo_bank(bank, DemoConfig(branches=a.branches, customers_per_branch=a.customers_per_branch,
                                         months=a.months, seed=11))  # fmt: skip
    res["demo_data_seconds"] = time.perf_counter() - t
    key = work / "key"
    if not key.exists():
        new_key_file(key)
    from crmresearch.core.params import load_params
    from crmresearch.data.contract import load_source

    src = load_source(bank, load_params(None, {}))
    month = f"{src.as_of:%Y-%m}"
    src.close()
    cache = work / "cache"
    common = [str(bank), "--month", month, "--key-file", str(key), "--cache-dir", str(cache),
              "--language", a.language, "--force"]  # fmt: skip

    # (c) the month (first: it builds the bundle that (b) reuses)
    out_m = work / "reports-month"
    r = run([*common, "--out", str(out_m), "--workers", str(a.workers)])
    man = json.loads((out_m / month / "manifest.json").read_text())
    res["month"] = {"wall": r["wall"], "bank_stage_seconds": man.get("bank_stage_seconds"),
                    "peak_process_gib": r["peak_process_gib"], "peak_total_gib": r["peak_total_gib"],
                    "bundle_reused": man.get("bundle_reused"), "branch_stage_seconds": man.get("branch_stage_seconds"),
                    "reports": man.get("branch_stage_reports"), "bank_summary_seconds": man.get("bank_summary_seconds"),
                    "per_report": {k: v["duration_seconds"] for k, v in man["reports"].items()}}  # fmt: skip

    # (b) one branch, warm cache
    if not a.skip_single:
        out_b = work / "reports-one"
        r = run([*common, "--out", str(out_b), "--workers", "1", "--branch", "B001"])
        man = json.loads((out_b / month / "manifest.json").read_text())
        res["single"] = {"wall": r["wall"], "branch_stage_seconds": man.get("branch_stage_seconds"),
                         "report_seconds": man["reports"]["B001"]["duration_seconds"],
                         "bank_stage_seconds": man.get("bank_stage_seconds")}  # fmt: skip

    if a.pdf:
        res["pdf"] = pdf_pairs(common, work, month, a.workers, a.pdf_pairs)

    target_month = fmean * a.branches / a.workers
    rows = [("floor per report (s)", f"{fmean:.2f} ± {res['floor']['stdev']:.2f}", "")]
    if "single" in res:
        s = res["single"]["branch_stage_seconds"]
        rows.append(("one branch report, branch stage (s)", f"{s:.2f}", f"{s / fmean:.2f} x floor (target <= 1.5)"))
    m = res["month"]
    rows.append((f"month bank stage (s, {'reused' if m['bundle_reused'] else 'built'})", f"{m['bank_stage_seconds']:.1f}",
                 "target <= 90 at 1M"))  # fmt: skip
    rows.append(("month bank summary report (s, after the branch stage)", f"{m['bank_summary_seconds'] or 0:.1f}",
                 "target <= 30 at 1M"))  # fmt: skip
    rows.append(("month peak memory of one process / of all at once (GiB)",
                 f"{m['peak_process_gib']:.2f} / {m['peak_total_gib']:.2f}", "target <= 8 per process"))  # fmt: skip
    per = [v for k, v in m["per_report"].items() if k not in ("bank", "index")]
    warm = sorted(per)[: max(1, len(per) - a.workers)]  # leaving out each worker's first (the slowest)
    rows.append(("month branch report, mean of the warm ones (s)", f"{statistics.mean(warm):.2f}",
                 f"{statistics.mean(warm) / fmean:.2f} x floor"))  # fmt: skip
    rows.append((f"month branch stage, {m['reports']} reports, {a.workers} workers (s)", f"{m['branch_stage_seconds']:.1f}",
                 f"{m['branch_stage_seconds'] / target_month:.2f} x floor x B / {a.workers} = {target_month:.1f} s "
                 "(target <= 1.5)"))  # fmt: skip
    res["ratios"] = {"single": res.get("single", {}).get("branch_stage_seconds", float("nan")) / fmean,
                     "month": m["branch_stage_seconds"] / target_month}  # fmt: skip
    if "pdf" in res:
        d = res["pdf"]
        rows.append((f"branch stage without / with --pdf, {m['reports']} reports (s, median)",
                     f"{d['stage_without']:.1f} / {d['stage_with']:.1f}", ""))  # fmt: skip
        rows.append(("added by the PDF per report: branch stage x workers / reports (s)",
                     f"{d['added_per_report_stage']:.2f}", "target <= 1.0"))  # fmt: skip
        rows.append(("added by the PDF per report: mean report duration (s)",
                     f"{d['added_per_report_duration']:.2f}", "target <= 1.0"))  # fmt: skip
        rows.append(("the print itself, in the run (s, mean / max over reports)",
                     f"{d['pdf_seconds_mean']:.2f} / {d['pdf_seconds_max']:.2f}", "target <= 1.0"))  # fmt: skip
    w = max(len(r[0]) for r in rows)
    for name, val, ratio in rows:
        print(f"{name:<{w}}  {val:>14}  {ratio}")
    outdir = HERE / "out"
    outdir.mkdir(exist_ok=True)
    path = outdir / f"bench_reports-{dt.datetime.now():%Y%m%d-%H%M%S}-B{a.branches}.json"
    path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
