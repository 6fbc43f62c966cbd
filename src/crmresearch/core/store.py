"""Data-only storage of results: JSON for values, Parquet for tables; nothing that can run code.

The month bundle keeps the bank-wide results (a fitted model, KPI tables,
the validation report ...) in the cache between runs.  Pickle would rebuild
whatever objects a file names, so a file planted in the cache would run as
the user.  This module writes the same results as plain data instead:

* JSON for scalars, strings, lists, tuples, dicts, dates and small numeric
  arrays (every value tagged with its type, so it comes back as the same type);
* one Parquet file per pandas DataFrame or Series (dtypes and index kept);
* objects of a fixed list of result classes (:data:`CLASSES`) as their
  attributes, rebuilt without calling any code of the file's choosing: a
  class the list does not name is refused, on writing and on reading.

A file can at worst hold wrong data, never run code.

Examples
--------
>>> import tempfile, pandas as pd
>>> d = Path(tempfile.mkdtemp())
>>> tree = dump({"n": 3, "df": pd.DataFrame({"a": [1.5, float("nan")]})}, d)
>>> load(tree, d)["df"]["a"].isna().tolist()
[False, True]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CLASSES", "StoreError", "dump", "load"]

#: the classes whose objects may be stored, as ``name -> (module, class)``; nothing else is ever rebuilt
CLASSES = {
    "BankContext": ("crmresearch.month.bundle", "BankContext"),
    "TimeVaryingCox": ("crmresearch.survival.cox", "TimeVaryingCox"),
    "CoxResults": ("crmresearch.survival.cox", "CoxResults"),
    "StickyProductsResult": ("crmresearch.analyses.product_coverage", "StickyProductsResult"),
    "CoverageResult": ("crmresearch.analyses.product_coverage", "CoverageResult"),
    "TurnoverComparison": ("crmresearch.analyses.rm_turnover", "TurnoverComparison"),
    "LifecycleResult": ("crmresearch.analyses.lifecycle", "LifecycleResult"),
    "ContactOutcomes": ("crmresearch.analyses.retention_loop", "ContactOutcomes"),
    "ValidationReport": ("crmresearch.data.contract", "ValidationReport"),
    "Finding": ("crmresearch.data.contract", "Finding"),
}
_NUMERIC_KINDS = "biuf"  # arrays of bool, int, unsigned, float go to JSON


class StoreError(ValueError):
    """A value cannot be stored as data, or a stored tree is not one this module wrote.

    Examples
    --------
    >>> load({"t": "obj", "cls": "Popen", "v": []}, ".")
    Traceback (most recent call last):
    crmresearch.core.store.StoreError: unknown stored class 'Popen': only BankContext, TimeVaryingCox, ...
    """


def _class(name: str) -> type:
    if name not in CLASSES:
        raise StoreError(f"unknown stored class {name!r}: only {', '.join(CLASSES)} are rebuilt")
    module, attr = CLASSES[name]
    return getattr(importlib.import_module(module), attr)


def _float(x: float) -> Any:
    return x if math.isfinite(x) else {"t": "float", "v": repr(x)}


def dump(value: Any, folder: str | Path, root: str = "value") -> Any:
    """Encode ``value`` as a JSON-able tree; its DataFrames and Series go to Parquet files in ``folder``.

    Parameters
    ----------
    value : object
        None, bool, int, float, str, list, tuple, dict, date, datetime,
        numpy scalars and numeric arrays, pandas DataFrames and Series (with
        string column names), and objects of the classes in :data:`CLASSES`,
        nested in any way.
    folder : str or Path
        Where the Parquet files go (``<root>-<n>.parquet``; must exist).
    root : str
        The value's name: in error messages and the Parquet files' names
        (dumps of different roots into one folder never collide).

    Returns
    -------
    object
        The tree to write with :func:`json.dump`.

    Raises
    ------
    StoreError
        A value of another type (its place in the tree is named).

    Examples
    --------
    >>> import tempfile, datetime as dt
    >>> dump({"as_of": dt.date(2026, 10, 31), "k": (1, 2)}, tempfile.mkdtemp())
    {'t': 'dict', 'v': [['as_of', {'t': 'date', 'v': '2026-10-31'}], ['k', {'t': 'tuple', 'v': [1, 2]}]]}
    """
    folder = Path(folder)
    frames: list[str] = []
    stem = re.sub(r"[^A-Za-z0-9_]", "_", root) or "value"  # dumps of other roots never overwrite these files

    def enc(x: Any, path: str) -> Any:
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, np.generic):
            if x.dtype.kind not in _NUMERIC_KINDS:
                raise StoreError(f"{path}: numpy {x.dtype} values are not stored")
            return {"t": "np", "dtype": x.dtype.str, "v": _float(float(x)) if x.dtype.kind == "f" else x.item()}
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            return _float(x)
        if x is pd.NaT:
            return {"t": "nat"}
        if isinstance(x, pd.Timestamp):
            return {"t": "timestamp", "v": x.isoformat()}
        if isinstance(x, dt.datetime):
            return {"t": "datetime", "v": x.isoformat()}
        if isinstance(x, dt.date):
            return {"t": "date", "v": x.isoformat()}
        if isinstance(x, list):
            return [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, tuple):
            return {"t": "tuple", "v": [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, dict):
            return {"t": "dict", "v": [[enc(k, f"{path} key"), enc(v, f"{path}[{k!r}]")] for k, v in x.items()]}
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in _NUMERIC_KINDS:
                raise StoreError(f"{path}: numpy arrays of {x.dtype} are not stored")
            flat = [_float(v) for v in x.ravel().tolist()] if x.dtype.kind == "f" else x.ravel().tolist()
            return {"t": "ndarray", "dtype": x.dtype.str, "shape": list(x.shape), "v": flat}
        if isinstance(x, (pd.DataFrame, pd.Series)):
            series = isinstance(x, pd.Series)
            df = x.to_frame(name="value") if series else x
            if not all(isinstance(c, str) for c in df.columns):
                raise StoreError(f"{path}: a table's column names must be strings")
            name = f"{stem}-{len(frames)}.parquet"
            try:
                df.to_parquet(folder / name, engine="pyarrow")
            except Exception as exc:  # noqa: BLE001 - pyarrow's many conversion errors: one message
                raise StoreError(f"{path}: the table cannot be stored as Parquet: {exc}") from exc
            frames.append(name)
            out = {"t": "series" if series else "frame", "file": name}
            if series:
                out["name"] = enc(x.name, f"{path}.name")
            return out
        cls = type(x)
        if cls.__name__ in CLASSES and _class(cls.__name__) is cls:
            return {"t": "obj", "cls": cls.__name__,
                    "v": [[k, enc(v, f"{path}.{k}")] for k, v in vars(x).items()]}  # fmt: skip
        raise StoreError(f"{path}: a {cls.__module__}.{cls.__qualname__} is not stored (data only)")

    return enc(value, root)


def load(tree: Any, folder: str | Path) -> Any:
    """Rebuild what :func:`dump` encoded (Parquet files read from ``folder``).

    Parameters
    ----------
    tree : object
        A tree read with :func:`json.load`.
    folder : str or Path
        The folder of its Parquet files.

    Returns
    -------
    object

    Raises
    ------
    StoreError
        The tree holds a type tag or class this module does not know, or
        names a file outside ``folder``.

    Examples
    --------
    >>> load({"t": "tuple", "v": [1, {"t": "float", "v": "nan"}]}, ".")
    (1, nan)
    """
    folder = Path(folder)

    def dec(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict) or "t" not in x:
            raise StoreError(f"not a stored value: {str(x)[:80]}")
        t = x["t"]
        if t == "float":
            return float(x["v"])
        if t == "np":
            return np.dtype(_dtype(x["dtype"])).type(dec(x["v"]))
        if t == "nat":
            return pd.NaT
        if t == "date":
            return dt.date.fromisoformat(x["v"])
        if t == "datetime":
            return dt.datetime.fromisoformat(x["v"])
        if t == "timestamp":
            return pd.Timestamp(x["v"])
        if t == "tuple":
            return tuple(dec(v) for v in x["v"])
        if t == "dict":
            return {_hashable(dec(k)): dec(v) for k, v in x["v"]}
        if t == "ndarray":
            return np.array([dec(v) for v in x["v"]], dtype=_dtype(x["dtype"])).reshape(x["shape"])
        if t in ("frame", "series"):
            name = str(x["file"])
            if Path(name).name != name or not name.endswith(".parquet"):
                raise StoreError(f"stored table {name!r} is not a Parquet file of {folder}")
            df = pd.read_parquet(folder / name, engine="pyarrow")
            if t == "frame":
                return df
            s = df["value"]
            s.name = dec(x.get("name"))
            return s
        if t == "obj":
            cls = _class(x["cls"])
            obj = cls.__new__(cls)
            state = {str(k): dec(v) for k, v in x["v"]}
            if dataclasses.is_dataclass(cls):
                known = {f.name for f in dataclasses.fields(cls)}
                if set(state) - known:
                    raise StoreError(f"stored {x['cls']} has unknown fields: {sorted(set(state) - known)}")
            obj.__dict__.update(state)  # attributes only: no __init__, no __setstate__, nothing of the file's
            return obj
        raise StoreError(f"unknown stored type {t!r}")

    return dec(tree)


def _dtype(s: str) -> np.dtype:
    d = np.dtype(s)
    if d.kind not in _NUMERIC_KINDS:
        raise StoreError(f"stored dtype {s!r} is not numeric")
    return d


def _hashable(k: Any) -> Any:
    return tuple(_hashable(v) for v in k) if isinstance(k, list) else k
