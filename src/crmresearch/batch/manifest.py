"""The run's manifest and fingerprints: what each report was made from, so that a rerun redoes only what changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crmresearch.batch.guards import EXIT_FAILED, RESERVED, check_branch_id
from crmresearch.batch.tasks import _publish
from crmresearch.core.errors import InputError
from crmresearch.core.params import Params


@dataclass
class RunSummary:
    """What a run did: per report ``done``, ``failed`` or ``skipped``, with errors and timings.

    Examples
    --------
    >>> s = RunSummary(out_dir=Path("reports/2026-10"), bundle=Path("/tmp/b"), bank_stage_seconds=3.2)
    >>> s.exit_code, s.index
    (0, PosixPath('reports/2026-10/index.html'))
    """

    out_dir: Path
    bundle: Path
    bank_stage_seconds: float
    bundle_reused: bool = False
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    branch_stage_seconds: float = 0.0
    bank_summary_seconds: float = 0.0

    @property
    def index(self) -> Path:
        """The index page."""
        return self.out_dir / "index.html"

    @property
    def exit_code(self) -> int:
        """0 when no report failed, else 1."""
        return EXIT_FAILED if self.errors else 0


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("reports"), dict) else None


def _manifest_text(manifest: dict) -> str:
    reports = manifest["reports"]
    order = ["bank", *sorted(k for k in reports if k not in RESERVED), "index"]
    head = {k: manifest[k] for k in ("schema", "crmresearch_version", "month", "language", "source") if k in manifest}
    tail = {k: manifest[k] for k in ("environment",) if k in manifest}  # the long list last, after the reports
    rest = {k: v for k, v in manifest.items() if k not in tail}
    manifest = {**head, **rest, "reports": {k: reports[k] for k in order if k in reports}, **tail}
    return json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def code_digest() -> str:
    """SHA-256 of the package's code (every ``.py`` file, notebook and template of :mod:`crmresearch`, by name and content).

    Part of every report's fingerprint beside the package version: while a
    version is being developed its number stays the same, and a fix to the
    analyses or the rendering must still redo the reports it changes.

    Examples
    --------
    >>> len(code_digest())
    64
    """
    from crmresearch.core.fingerprint import file_digest

    here = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(f for f in here.rglob("*") if f.suffix in (".py", ".ipynb", ".j2") and f.is_file()):
        h.update(str(f.relative_to(here)).encode() + b"\0" + file_digest(f).encode() + b"\n")
    return h.hexdigest()


def _settings(params: Params) -> dict:
    return {k: v for k, v in params.to_dict().items() if k != "engine"}


def _metrics_store(bundle_path: Path, fingerprint: str) -> Path:
    """Where a report's exact ``metrics.json`` is kept: beside its month bundle, named by the report's fingerprint."""
    return bundle_path / "metrics" / f"{fingerprint}.json"


def _remove_published_metrics(out_dir: Path) -> None:
    """Remove the ``metrics.json`` files earlier versions published beside the reports (exact counts)."""
    for f in [out_dir / "bank.metrics.json", *(out_dir / "branches").glob("*.metrics.json")]:
        f.unlink(missing_ok=True)


def _copy_metrics(bundle_path: Path, manifest: dict, target: Path, say: Callable[[str], None]) -> None:
    """Copy every done report's exact ``metrics.json`` to ``target/<name>.json`` (``--metrics-dir``)."""
    n = 0
    for name, entry in manifest["reports"].items():
        src = _metrics_store(bundle_path, str(entry.get("fingerprint")))
        if entry.get("scope") in ("bank", "branch") and entry.get("status") == "done" and src.is_file():
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            _publish(src, target / f"{name}.json")
            n += 1
    say(f"metrics.json of {n} report(s) written to {target}")


def _remove_reports(out_dir: Path, manifest: dict) -> None:
    """Remove the published files of a manifest's reports (the folder is switching language)."""
    for name in manifest.get("reports", {}):
        if name == "index":
            rel = ["index.html"]
        elif name == "bank":
            rel = ["bank.html", "bank.pdf", "bank.metrics.json", "notebooks/bank.ipynb"]
        else:
            try:
                check_branch_id(name)
            except InputError:
                continue
            rel = [f"branches/{name}.html", f"branches/{name}.pdf", f"branches/{name}.metrics.json",
                   f"notebooks/{name}.ipynb"]
        for r in rel:
            (out_dir / r).unlink(missing_ok=True)


@dataclass(frozen=True)
class EnvironmentCheck:
    """This environment against the one a past run recorded (``crmresearch report --check-environment``).

    Examples
    --------
    >>> EnvironmentCheck(Path("manifest.json"), "2026-10", "ab" * 32, "ab" * 32, []).matches
    True
    """

    manifest: Path
    month: str | None
    recorded_digest: str
    current_digest: str
    differences: list[str]

    @property
    def matches(self) -> bool:
        """True when Python and every installed distribution are the same."""
        return not self.differences


def check_environment(path: str | Path) -> EnvironmentCheck:
    """Compare this environment with the one a run's ``manifest.json`` records.

    Parameters
    ----------
    path : str or Path
        A ``manifest.json``, or the month folder that holds one.

    Returns
    -------
    EnvironmentCheck
        The two environment digests and what differs (Python's version, then each distribution:
        :func:`crmresearch.core.provenance.environment_differences`).

    Raises
    ------
    InputError
        One line: the file is missing or unreadable, not a run's manifest, or records no environment
        (written before crmresearch recorded provenance), or its list does not give its digest.

    Examples
    --------
    >>> check_environment("reports/2026-10/manifest.json").matches  # doctest: +SKIP
    True
    """
    from crmresearch.core.provenance import environment, environment_differences, environment_digest

    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    if not p.is_file():
        raise InputError(f"--check-environment {path}: no such manifest file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--check-environment {path}: not a readable JSON manifest ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("reports"), dict):
        raise InputError(f"--check-environment {path}: not the manifest.json of a crmresearch report run")
    lines, digest = data.get("environment"), data.get("environment_digest")
    if not isinstance(lines, list) or not all(isinstance(x, str) and "==" in x for x in lines) or not digest:
        raise InputError(f"--check-environment {path}: records no environment (written before crmresearch "
                         "recorded provenance); re-render the month to record one")  # fmt: skip
    if environment_digest(lines) != digest:
        raise InputError(f"--check-environment {path}: its environment list does not give its environment_digest "
                         "(the file was edited or damaged)")  # fmt: skip
    now = environment()
    diffs = []
    if data.get("python") and data["python"] != now["python"]:
        diffs.append(f"changed: python {data['python']} -> {now['python']}")
    diffs += environment_differences(lines, now["environment"])
    return EnvironmentCheck(p, data.get("month"), digest, now["environment_digest"], diffs)
