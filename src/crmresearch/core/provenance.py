"""Provenance: what a report was made with, so that a past month can be re-made and checked.

Every run's ``manifest.json`` and every report's "About this report" record
(docs/reports.md, "Provenance"):

* the package version (:data:`crmresearch.core.version.__version__`);
* the **environment digest**: SHA-256 of the sorted ``name==version`` lines of
  every distribution installed beside the package (:func:`installed_distributions`,
  read with :mod:`importlib.metadata`); the manifest also keeps the lines
  themselves, so that ``crmresearch report --check-environment MANIFEST`` can say
  what differs (:func:`environment_differences`);
* the source fingerprint (:func:`crmresearch.core.fingerprint.source_fingerprint`);
* the parameters digest (:func:`params_digest`);
* the notebook digest (:func:`crmresearch.core.fingerprint.file_digest` of the report notebook).

An environment installed from the lock file (``requirements/*.lock``, ``make
lock``) has the same digest on every machine it is installed on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import distributions
from typing import Any

from crmresearch.core.params import Params

__all__ = ["environment", "environment_differences", "environment_digest", "installed_distributions",
           "params_digest"]  # fmt: skip


def _canonical(name: str) -> str:
    """A distribution name as PEP 503 normalises it (``Jinja2`` -> ``jinja2``, ``ruamel.yaml`` -> ``ruamel-yaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> list[str]:
    """Every installed distribution as ``name==version``, names normalised, sorted (one line each).

    A distribution found twice on the path (an editable install and a stale
    copy, say) is listed once, as Python imports it: the first found.

    Returns
    -------
    list of str
        Sorted ``name==version`` lines.

    Examples
    --------
    >>> any(line.startswith("crmresearch==") for line in installed_distributions())
    True
    """
    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        seen.setdefault(_canonical(name), str(dist.version))
    return sorted(f"{n}=={v}" for n, v in seen.items())


def environment_digest(lines: Iterable[str] | None = None) -> str:
    """SHA-256 of the sorted ``name==version`` lines (default: this environment's, :func:`installed_distributions`).

    Examples
    --------
    >>> environment_digest(["b==2", "a==1"]) == environment_digest(["a==1", "b==2"])
    True
    >>> len(environment_digest())
    64
    """
    if lines is None:
        return _current()["environment_digest"]
    return hashlib.sha256(("\n".join(sorted(lines)) + "\n").encode()).hexdigest()


@lru_cache(maxsize=1)
def _current() -> dict[str, Any]:
    lines = installed_distributions()
    return {"python": platform.python_version(), "environment_digest": environment_digest(lines),
            "environment": lines}  # fmt: skip


def environment() -> dict[str, Any]:
    """This environment: Python's version, the environment digest and the ``name==version`` lines.

    Read once per process (installing a package into a running kernel is not seen).

    Examples
    --------
    >>> sorted(environment())
    ['environment', 'environment_digest', 'python']
    """
    cur = _current()
    return {**cur, "environment": list(cur["environment"])}


def params_digest(params: Params) -> str:
    """The digest of the parameters that affect results (the engine's threads and memory do not): 16 hex digits.

    The same value as ``params_digest`` in metrics.json.

    Examples
    --------
    >>> params_digest(Params()) == params_digest(Params(engine={"threads": 1}))
    True
    """
    settings = {k: v for k, v in params.to_dict().items() if k != "engine"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _split(line: str) -> tuple[str, str]:
    name, _, version = line.partition("==")
    return _canonical(name.strip()), version.strip()


def environment_differences(recorded: Iterable[str], current: Iterable[str] | None = None) -> list[str]:
    """What differs between a recorded environment and this one (default), one line per distribution.

    Parameters
    ----------
    recorded : iterable of str
        ``name==version`` lines, as a manifest's ``environment`` holds them.
    current : iterable of str, optional
        The environment to compare with (default: this one).

    Returns
    -------
    list of str
        Sorted by name: ``changed: pandas 2.2.3 -> 2.3.0``, ``missing: x==1`` (recorded, not installed now),
        ``added: y==2`` (installed now, not recorded). Empty when the two are the same.

    Examples
    --------
    >>> environment_differences(["a==1", "b==2"], ["a==1", "b==3", "c==1"])
    ['changed: b 2 -> 3', 'added: c==1']
    """
    old = dict(_split(x) for x in recorded)
    new = dict(_split(x) for x in (installed_distributions() if current is None else current))
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append(f"missing: {name}=={old[name]}")
        elif name not in old:
            out.append(f"added: {name}=={new[name]}")
        elif old[name] != new[name]:
            out.append(f"changed: {name} {old[name]} -> {new[name]}")
    return out
