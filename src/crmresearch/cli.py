"""Command line: ``crmresearch validate | demo-data | survival-table | import-flat | metrics | report | keygen | unmask``.

Every command takes ``--params FILE``; user errors (bad data, bad parameters,
bad paths) end with a clear message and a non-zero exit code, and nothing is
written.  Exit status, the same for every command (decided in :func:`main`
only): 0 success, 1 some report failed (``report``) or the environment differs from a past
run's (``report --check-environment``), 2 bad input or usage
(including a source that breaks the data contract or has an unreadable
file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import sys
import time
from pathlib import Path

from crmresearch.batch.procs import RunInterrupted
from crmresearch.core.errors import InputError
from crmresearch.core.io import check_output
from crmresearch.core.params import Params, load_params
from crmresearch.core.version import __version__
from crmresearch.data.contract import ContractError, load_source, validate_source

EXIT_OK, EXIT_REPORT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Outcome(enum.Enum):
    """How a command ended; :func:`main` turns it into the exit status."""

    OK = "ok"
    REPORT_FAILED = "some report failed"
    ENVIRONMENT_DIFFERS = "the environment differs from the run's"
    BAD_INPUT = "bad input"


class UserError(InputError):
    """An error in the options the user gave; printed without a traceback."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _params(args: argparse.Namespace, overrides: dict | None = None) -> Params:
    return load_params(args.params, {k: v for k, v in (overrides or {}).items() if v is not None})


def _source(text: str) -> Path | str:
    """A SOURCE argument: a path, or a PostgreSQL URI kept as text."""
    return text if text.startswith(("postgresql://", "postgres://")) else Path(text)


def _shown(source: Path | str) -> str:
    """A SOURCE as it may be printed (a URI's password as ***)."""
    from crmresearch.data.database import mask_uri

    return mask_uri(source) if isinstance(source, str) else str(source)


def _format(text: str) -> str:
    if text in ("parquet", "csv", "duckdb") or text.startswith(("postgresql://", "postgres://")):
        return text
    raise argparse.ArgumentTypeError("choose parquet, csv, duckdb or a postgresql:// URI")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _print_support(path: Path | str, params: Params | None = None, mapping: Path | None = None) -> None:
    """Print, for a flat extract, which analyses run and which do not, and why (contract: "Flat extracts")."""
    from crmresearch.data.capabilities import flat_support

    source = load_source(path, params, mapping)
    try:
        support = flat_support(source)
    finally:
        source.close()
    ok, no = support[support["available"]], support[~support["available"]]
    print("analyses that run on this flat extract: " + (", ".join(ok["analysis"]) or "none"))
    print("unavailable on this flat extract, and why:")
    for row in no.itertuples():
        print(f"  - {row.analysis}: {row.reason}")


def cmd_validate(args: argparse.Namespace) -> Outcome:
    params = _params(args)
    _say(f"reading and checking {_shown(args.source)} ...")
    report = validate_source(args.source, params, args.mapping)
    print(report.to_text())
    if report.ok and not report.can("calendar"):
        _print_support(args.source, params, args.mapping)
    return Outcome.OK if report.ok else Outcome.BAD_INPUT


def cmd_demo_data(args: argparse.Namespace) -> Outcome:
    from crmresearch.data.demo import DemoConfig, write_demo_bank

    database = args.format.startswith(("postgresql://", "postgres://"))
    if args.out_dir is None and not database:
        raise UserError("give OUT_DIR (it may be left out only with --format postgresql://...)")
    if args.out_dir is not None:
        check_output(args.out_dir, "OUT_DIR", kind="dir")
    cfg = DemoConfig(
        branches=args.branches,
        customers_per_branch=args.customers_per_branch,
        months=args.months,
        as_of=args.as_of,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    out = write_demo_bank(args.out_dir, cfg, fmt=args.format, force=args.force, progress=True)
    _say(f"demo bank written to {out} ({time.perf_counter() - t0:.1f} s)")
    return Outcome.OK


def cmd_survival_table(args: argparse.Namespace) -> Outcome:
    from crmresearch.survival.episodes import write_survival_table

    params = _params(args, {"churn.definition": args.churn_definition})
    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise UserError(f"--out {out}: must end in .parquet or .csv")
    check_output(out, "--out")
    if out.exists() and not args.force:
        raise UserError(f"--out {out} exists; pass --force to replace it")
    t0 = time.perf_counter()
    _say(f"reading and checking {_shown(args.source)} ...")
    source = load_source(args.source, params, args.mapping)
    _say(f"source is valid ({time.perf_counter() - t0:.1f} s); building the {'episodes' if args.episodes else 'customer table'} ...")
    for w in source.report.warnings:
        _say(str(w))
    if not source.can("calendar"):
        _say("flat extract: " + source.report.settings["calendar"] + "; the customer table's duration "
             "is tenure_months x 30.4375 days, read as tenure at exit for churners")  # fmt: skip
    else:
        _say(f"as-of {args.as_of or source.as_of}, observation start {source.observation_start}, "
             f"churn definition {params.churn.definition}")  # fmt: skip
    what, n = write_survival_table(source, params, out, as_of=args.as_of, episodes=args.episodes)
    _say(f"{what}: {n:,} rows written to {out} ({time.perf_counter() - t0:.1f} s)")
    return Outcome.OK


def cmd_import_flat(args: argparse.Namespace) -> Outcome:
    from crmresearch.data.flat import import_flat

    params = _params(args)  # a bad parameters file stops the command before anything is written
    out = import_flat(args.csv, args.mapping, check_output(args.out, "--out", kind="dir"), force=args.force)
    _say(f"flat extract imported to {out}")
    _print_support(out, params)
    return Outcome.OK


def cmd_metrics(args: argparse.Namespace) -> Outcome:
    from crmresearch.month.metrics import metrics, write_metrics

    if args.branch is None and not args.bank:
        raise UserError("give --branch ID or --bank")
    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise UserError(f"--out {out}: must end in .json")
    check_output(out, "--out")
    params = _params(args, {"language": args.language})
    t0 = time.perf_counter()
    _say(f"reading and checking {_shown(args.source)} ...")
    source = load_source(args.source, params, args.mapping)
    scope = f"branch {args.branch}" if args.branch else "the bank"
    _say(f"computing the metrics of {scope}" + (f" for {args.month}" if args.month else " (flat extract)") + " ...")
    content = metrics(source, params, month=args.month, branch=args.branch)
    status = write_metrics(content, out, force=args.force)
    _say(f"metrics.json {status}: {out} ({time.perf_counter() - t0:.1f} s)")
    return Outcome.OK


def _check_environment(args: argparse.Namespace) -> Outcome:
    """``report --check-environment MANIFEST``: is this environment the one that run recorded?"""
    from crmresearch.batch.manifest import check_environment

    if args.source is not None:
        raise UserError("--check-environment MANIFEST compares environments only: give no SOURCE")
    res = check_environment(args.check_environment)
    run = f"the run of {res.month}" if res.month else "the run"
    if res.matches:
        print(f"environment matches {run} ({res.manifest}): environment digest {res.current_digest}")
        return Outcome.OK
    print(f"environment differs from {run} ({res.manifest}): {len(res.differences)} difference(s); recorded "
          f"{res.recorded_digest}, now {res.current_digest}")  # fmt: skip
    for line in res.differences:
        print(f"  {line}")
    print("to re-make that environment: a venv from the lock of the run's commit (make test, or pip install "
          "--require-hashes -r requirements/py311-dev.lock)")  # fmt: skip
    return Outcome.ENVIRONMENT_DIFFERS


def cmd_report(args: argparse.Namespace) -> Outcome:
    from crmresearch.batch.run import run_report

    if args.check_environment is not None:
        return _check_environment(args)
    if args.source is None:
        raise UserError("report: give SOURCE (or --check-environment MANIFEST)")
    t0 = time.perf_counter()
    summary = run_report(args.source, month=args.month, branches=args.branch, out=args.out, params_path=args.params,
                         overrides={"language": args.language}, workers=args.workers, scheduler=args.scheduler,
                         force=args.force, cache_dir=args.cache_dir, timeout=args.timeout,
                         key_file=args.key_file, log=_say, metrics_dir=args.metrics_dir,
                         wait=args.wait, pdf=args.pdf, retries=args.retries,
                         mapping=args.mapping,
                         tls=(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca or args.tls_cert
                         or args.tls_key else None)  # fmt: skip
    counts = {s: sum(v == s for v in summary.status.values()) for s in ("done", "skipped", "failed")}
    _say(f"{counts['done']} report(s) done, {counts['skipped']} skipped (unchanged), {counts['failed']} failed "
         f"in {time.perf_counter() - t0:.1f} s (bank stage {summary.bank_stage_seconds:.1f} s"
         f"{', bundle reused' if summary.bundle_reused else ''}; branch stage {summary.branch_stage_seconds:.1f} s"
         + (f"; bank summary {summary.bank_summary_seconds:.1f} s" if summary.bank_summary_seconds else "") + ")")  # fmt: skip
    if summary.errors:
        _say("failed reports (the reason on each line; a notebook's traceback is in its executed notebook in "
             f"{summary.out_dir / 'notebooks'}):")  # fmt: skip
        for name, err in summary.errors.items():
            _say(f"  - {name}: {err.splitlines()[0][:500]}")
    print(f"index: {summary.index.resolve()}")
    return Outcome.REPORT_FAILED if summary.errors else Outcome.OK


def cmd_keygen(args: argparse.Namespace) -> Outcome:
    from crmresearch.core.privacy import new_key_file

    path = new_key_file(check_output(args.file, "key file"), force=args.force)
    _say(f"pseudonym key written to {path} (readable by you only); keep it outside the published reports")
    return Outcome.OK


def cmd_unmask(args: argparse.Namespace) -> Outcome:
    from crmresearch.core.privacy import load_key, resolve_pseudonyms

    key = load_key(args.key_file)
    source = load_source(args.source, _params(args), args.mapping)
    try:
        found = resolve_pseudonyms(args.tokens, source.df("customers")["customer_id"], key)
    finally:
        source.close()
    for row in found.itertuples():
        print(f"{row.pseudonym}\t{row.customer_id if row.customer_id is not None else '(not found)'}")
    missing = int(found["customer_id"].isna().sum())
    if missing:
        _say(f"error: {missing} pseudonym(s) match no customer of {_shown(args.source)} with this key")
    return Outcome.BAD_INPUT if missing else Outcome.OK


def _report_options(sp: argparse.ArgumentParser) -> None:
    """The options of ``crmresearch report`` (beside SOURCE and --mapping)."""
    sp.add_argument("--check-environment", type=Path, default=None, metavar="MANIFEST",
                    help="only compare this environment (Python and every installed package) with the one a past "
                         "run's manifest.json (or month folder) records, and list the differences; exit 0 same, "
                         "1 different")
    sp.add_argument("--month", default=None, help="YYYY-MM (required for a calendar source; omit for a flat extract)")
    sp.add_argument("--branch", action="extend", nargs="+", default=None, metavar="ID",
                    help="only these branches (and the index); default: every branch and the bank summary")
    sp.add_argument("--out", type=Path, default=Path("reports"),
                    help="published reports folder (default: reports); the month goes to OUT/YYYY-MM/")
    sp.add_argument("--language", choices=["en", "zh"], default=None, help="overrides the parameters file")
    sp.add_argument("--workers", type=int, default=None, help="local worker processes (default: the number of cores)")
    sp.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="run the branch reports on this Dask scheduler (tcp://host:8786, tls://host:8786) instead "
                         "of local workers; its workers need no file of this machine")
    sp.add_argument("--tls-ca", default=None, metavar="PEM", help="certificate authority of a tls:// scheduler")
    sp.add_argument("--tls-cert", default=None, metavar="PEM", help="this client's certificate (tls://)")
    sp.add_argument("--tls-key", default=None, metavar="PEM", help="this client's private key (tls://)")
    sp.add_argument("--retries", type=int, default=1,
                    help="times a cluster report whose worker was lost is tried again (default: 1)")
    sp.add_argument("--force", action="store_true",
                    help="redo every report, even unchanged ones (and allow switching the folder's language)")
    sp.add_argument("--cache-dir", type=Path, default=None,
                    help="where the month bundle (customer-level data) is cached; outside --out "
                         "(default: $CRMRESEARCH_CACHE, else ~/.cache/crmresearch)")
    sp.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="seconds one notebook may run before it is stopped and marked failed (default: 600)")
    sp.add_argument("--key-file", type=Path, default=None,
                    help="the pseudonym key file (default: $CRMRESEARCH_PSEUDONYM_KEY)")
    sp.add_argument("--metrics-dir", type=Path, default=None, metavar="DIR",
                    help="also write each report's exact metrics.json to DIR/YYYY-MM/ID.json (bank.json); "
                         "outside --out: it holds exact small counts, which the published reports suppress")
    sp.add_argument("--wait", action="store_true",
                    help="if another run is writing the same month folder, wait for it to end (default: refuse)")
    sp.add_argument("--pdf", action="store_true",
                    help="also write each report as an A4 PDF beside its HTML (branches/ID.pdf, bank.pdf), printed "
                         "by headless Chromium ($CRMRESEARCH_CHROMIUM, default chromium on PATH; needs "
                         "pip install 'crmresearch[pdf]')")
    sp.epilog = ("Reports go to OUT/YYYY-MM/ (OUT/snapshot/ for a flat extract): index.html, bank.html, "
                 "branches/ID.html (with --pdf also branches/ID.pdf and bank.pdf), notebooks/ (executed, for audit), manifest.json; exact metrics.json only "
                 "with --metrics-dir, never in OUT. A rerun "
                 "skips reports whose inputs are unchanged and redoes failed or stale ones. Per-branch parameters: "
                 "PARAMS_DIR/branches/ID.yaml beside --params. Exit status: 0 all reports done or unchanged, "
                 "1 some report failed (the others are done; see the summary and notebooks/), 2 bad input "
                 "(nothing written; also: another run is writing the folder, or a bad --check-environment "
                 "manifest), 130 interrupted (Ctrl-C), 143 stopped "
                 "by SIGTERM (workers and kernels stopped, manifest.json lists what finished).")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crmresearch", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"crmresearch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--params", type=Path, default=None,
                        help="parameters YAML (partial files are merged over the defaults)")
        return sp

    def source_arg(sp: argparse.ArgumentParser, optional: bool = False) -> None:
        sp.add_argument("source", type=_source, metavar="SOURCE", nargs="?" if optional else None, default=None,
                        help="a folder of <table>.parquet/.csv files, a DuckDB file, or a PostgreSQL URI "
                             "postgresql://user@host:port/dbname (password: PGPASSWORD, ~/.pgpass or a service file)")
        sp.add_argument("--mapping", type=Path, default=None, metavar="FILE.yaml",
                        help="the bank's table, column and code names mapped to the contract's (docs/data-contract.md)")

    sp = add("validate", "check a source against the data contract; exit 2 on any violation or unreadable file")
    source_arg(sp)
    sp.set_defaults(func=cmd_validate)

    sp = add("demo-data", "write the demo bank (every table of the contract and truth.json)")
    sp.add_argument("out_dir", type=Path, nargs="?", default=None,
                    help="folder to write (with --format postgresql://...: optional, receives truth.json)")
    sp.add_argument("--branches", type=int, default=8)
    sp.add_argument("--customers-per-branch", type=int, default=3000)
    sp.add_argument("--months", type=int, default=36)
    sp.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: the last month end before today)")
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--format", type=_format, default="parquet",
                    help="parquet (default), csv, duckdb, or a postgresql:// URI to write the tables into that database")
    sp.add_argument("--force", action="store_true", help="replace an existing demo bank")
    sp.set_defaults(func=cmd_demo_data)

    sp = add("survival-table", "write the customer table (or, with --episodes, the episodes)")
    source_arg(sp)
    sp.add_argument("--as-of", type=_date, default=None, help="censoring date (default: the extract's as-of)")
    sp.add_argument("--episodes", action="store_true", help="counting-process episodes instead of customers")
    sp.add_argument("--churn-definition", choices=["recorded", "asset_attrition"], default=None)
    sp.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    sp.add_argument("--force", action="store_true", help="replace an existing output file")
    sp.set_defaults(func=cmd_survival_table)

    sp = add("import-flat", "turn a one-table churn CSV into a flat-extract source via a YAML mapping")
    sp.add_argument("csv", type=Path)
    sp.add_argument("--mapping", required=True,
                    help="mapping YAML, or the name of a shipped one: bank-churn-modelling, telco-customer-churn")
    sp.add_argument("--out", required=True, type=Path, help="source directory to write")
    sp.add_argument("--force", action="store_true", help="replace an existing output directory")
    sp.set_defaults(func=cmd_import_flat)

    sp = add("metrics", "write the metrics.json of one branch or the bank for a month (no rendering)")
    source_arg(sp)
    sp.add_argument("--month", default=None, help="YYYY-MM (omit for a flat extract)")
    who = sp.add_mutually_exclusive_group()
    who.add_argument("--branch", default=None, help="branch_id")
    who.add_argument("--bank", action="store_true", help="the bank-wide metrics")
    sp.add_argument("--language", choices=["en", "zh"], default=None)
    sp.add_argument("--out", required=True, help="FILE.json")
    sp.add_argument("--force", action="store_true", help="replace an existing, different file")
    sp.set_defaults(func=cmd_metrics)

    sp = add("report", "render a month: every branch's HTML report, the bank summary and the index")
    source_arg(sp, optional=True)
    _report_options(sp)
    sp.set_defaults(func=cmd_report)

    sp = add("keygen", "create a pseudonym key file (customers appear in reports under keyed pseudonyms)")
    sp.add_argument("file", type=Path)
    sp.add_argument("--force", action="store_true", help="replace an existing key (changes every pseudonym)")
    sp.set_defaults(func=cmd_keygen)

    sp = add("unmask", "resolve report pseudonyms to customer IDs (for staff who hold the key)")
    source_arg(sp)
    sp.add_argument("tokens", nargs="+", help="pseudonyms as shown in a report (P + 16 hex digits)")
    sp.add_argument("--key-file", type=Path, default=None,
                    help="the pseudonym key file (default: $CRMRESEARCH_PSEUDONYM_KEY)")
    sp.set_defaults(func=cmd_unmask)
    return p


#: the exit status of each outcome: the one place it is decided (docs/reports.md, README)
EXIT_STATUS = {Outcome.OK: EXIT_OK, Outcome.REPORT_FAILED: EXIT_REPORT_FAILED,
               Outcome.ENVIRONMENT_DIFFERS: EXIT_REPORT_FAILED, Outcome.BAD_INPUT: EXIT_BAD_INPUT}


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success; 1 some report failed, or (``report --check-environment``) the
        environment differs from the run's; 2 bad input or usage: a bad option,
        parameters file or path, or a source that breaks the data contract
        (unreadable files included), with nothing written; 130 interrupted.
        A bad option (argparse) exits 2 too.

    Examples
    --------
    >>> main(["validate", "no/such/source"])  # doctest: +SKIP
    error: source no/such/source is neither a directory of <table>.parquet/.csv files nor a DuckDB database file (*.duckdb)
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        outcome = args.func(args)
    except ContractError as exc:
        print(exc.report.to_text(), file=sys.stderr)
        _say("nothing was written.")
        outcome = Outcome.BAD_INPUT
    except (InputError, FileNotFoundError, FileExistsError) as exc:
        _say(f"error: {exc}")
        outcome = Outcome.BAD_INPUT
    except KeyboardInterrupt as exc:
        _say("interrupted: files already written are complete; a rerun continues where this one stopped")
        return 128 + exc.signum if isinstance(exc, RunInterrupted) else EXIT_INTERRUPTED
    return EXIT_STATUS[outcome]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
