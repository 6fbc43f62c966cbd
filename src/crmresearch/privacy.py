"""Pseudonyms: customers appear in reports only under a keyed hash of their ID.

A pseudonym is ``"P" + the first 16 hex digits of HMAC-SHA256(key, customer_id)``:
stable for a key, unique within a bank (checked: a collision raises), and
impossible to reverse without the key.  Staff who hold the key resolve a
pseudonym by recomputing it for the bank's customer IDs
(:func:`resolve_pseudonyms`).  The key never goes into a report: it is read
from the environment variable ``CRMRESEARCH_PSEUDONYM_KEY`` or from a key
file kept outside the published reports.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["KEY_ENV", "load_key", "new_key_file", "pseudonymize", "resolve_pseudonyms"]

KEY_ENV = "CRMRESEARCH_PSEUDONYM_KEY"


def load_key(key_file: str | Path | None = None) -> bytes:
    """The pseudonym key: from ``key_file``, else the ``CRMRESEARCH_PSEUDONYM_KEY`` variable.

    Raises
    ------
    InputError
        No key is available, or the file is empty.

    Examples
    --------
    >>> load_key("secrets/pseudonym.key")  # doctest: +SKIP
    """
    if key_file is not None:
        p = Path(key_file)
        if not p.is_file():
            raise InputError(f"pseudonym key file not found: {p} (create one with `crmresearch keygen {p}`)")
        key = p.read_bytes().strip()
        if not key:
            raise InputError(f"pseudonym key file {p} is empty")
        return key
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return env.encode()
    raise InputError(f"no pseudonym key: set {KEY_ENV} or give a key file "
                     "(create one with `crmresearch keygen FILE`)")  # fmt: skip


def new_key_file(path: str | Path, *, force: bool = False) -> Path:
    """Write a new random key (64 hex digits) to ``path``, readable by its owner only.

    Examples
    --------
    >>> new_key_file("secrets/pseudonym.key")  # doctest: +SKIP
    """
    p = Path(path)
    if p.exists() and not force:
        raise InputError(f"{p} exists: a new key would change every pseudonym; pass --force to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.unlink(missing_ok=True)  # a replaced file must not keep its old permissions
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return p


def pseudonymize(ids: Iterable[str], key: bytes) -> pd.Series:
    """Keyed pseudonyms of customer IDs (same order).

    Examples
    --------
    >>> pseudonymize(["000123", "000124"], b"k").tolist()
    ['P4aa7709eda82c01c', 'Pa3f2550f406fa000']
    """
    ids = list(ids)
    out = pd.Series(["P" + hmac.new(key, str(i).encode(), hashlib.sha256).hexdigest()[:16] for i in ids],
                    dtype=object)  # fmt: skip
    if out.nunique() != pd.Series(ids).nunique():
        raise RuntimeError("pseudonym collision: use a longer pseudonym")  # 64 bits: ~1e-8 at 1M customers
    return out


def resolve_pseudonyms(pseudonyms: Iterable[str], customer_ids: Iterable[str], key: bytes) -> pd.DataFrame:
    """Map pseudonyms back to customer IDs, for staff who hold the key.

    Returns
    -------
    DataFrame
        ``pseudonym, customer_id`` (missing when no customer has it).

    Examples
    --------
    >>> resolve_pseudonyms(["P4aa7709eda82c01c"], ["000123", "000124"], b"k")
               pseudonym customer_id
    0  P4aa7709eda82c01c      000123
    """
    ids = pd.Series(list(customer_ids), dtype=object)
    table = dict(zip(pseudonymize(ids, key), ids, strict=True))
    ps = list(pseudonyms)
    return pd.DataFrame({"pseudonym": ps, "customer_id": [table.get(p) for p in ps]})
