"""Pseudonyms: customers appear in reports only under a keyed hash of their ID.

A pseudonym is ``"P" + the first 16 hex digits of HMAC-SHA256(key, customer_id)``:
stable for a key, unique within a bank (checked: a collision raises), and
impossible to reverse without the key.  Staff who hold the key resolve a
pseudonym by recomputing it for the bank's customer IDs
(:func:`resolve_pseudonyms`).  The key never goes into a report: it is read
from a key file kept outside the published reports (``--key-file``, or the
path in ``CRMRESEARCH_PSEUDONYM_KEY_FILE``) or from the environment variable
``CRMRESEARCH_PSEUDONYM_KEY``; it must be at least :data:`MIN_KEY_BYTES`
bytes (``crmresearch keygen`` writes 64).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from crmresearch.core.errors import InputError

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "MIN_KEY_BYTES", "check_key_outside", "key_path", "load_key",
           "new_key_file", "pseudonymize", "resolve_pseudonyms"]

KEY_ENV = "CRMRESEARCH_PSEUDONYM_KEY"
#: the path of a key file; how ``crmresearch report`` hands its key file to the report kernels
KEY_FILE_ENV = "CRMRESEARCH_PSEUDONYM_KEY_FILE"
#: the shortest key accepted: 256 bits (HMAC-SHA256's own strength)
MIN_KEY_BYTES = 32


def key_path(key_file: str | Path | None = None) -> Path | None:
    """The key file in use: ``key_file``, else the path in ``$CRMRESEARCH_PSEUDONYM_KEY_FILE``, else None.

    Examples
    --------
    >>> key_path("/etc/crm/pseudonym.key")
    PosixPath('/etc/crm/pseudonym.key')
    """
    if key_file is not None:
        return Path(key_file)
    env = os.environ.get(KEY_FILE_ENV, "").strip()
    return Path(env) if env else None


def check_key_outside(key_file: str | Path | None, published: Path, what: str = "--out") -> None:
    """Refuse a key file inside a folder that gets published (the reports folder).

    Parameters
    ----------
    key_file : str or Path or None
        The key file (None: the key comes from the environment, nothing to check).
    published : Path
        A folder whose files are published.
    what : str
        How the folder was given, for the message.

    Raises
    ------
    InputError
        The key file (after resolving links) lies inside ``published``.

    Examples
    --------
    >>> check_key_outside("/srv/www/reports/k.key", Path("/srv/www/reports"))
    Traceback (most recent call last):
    crmresearch.core.errors.InputError: pseudonym key file /srv/www/reports/k.key is inside --out /srv/www/reports, ...
    """
    if key_file is None:
        return
    key_abs, pub_abs = Path(key_file).resolve(), Path(published).resolve()
    if pub_abs == key_abs or pub_abs in key_abs.parents:
        raise InputError(f"pseudonym key file {key_file} is inside {what} {published}, which gets published: "
                         "anyone who reads the reports could undo the pseudonyms; keep the key elsewhere")  # fmt: skip


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InputError(f"pseudonym key {where} is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed "
                         "(create a key with `crmresearch keygen FILE`)")  # fmt: skip
    return key


def load_key(key_file: str | Path | None = None) -> bytes:
    """The pseudonym key: from ``key_file``, else the file named by ``$CRMRESEARCH_PSEUDONYM_KEY_FILE``,
    else the ``CRMRESEARCH_PSEUDONYM_KEY`` variable.

    Raises
    ------
    InputError
        No key is available, the file is missing or empty, or the key is
        shorter than :data:`MIN_KEY_BYTES` bytes (leading and trailing
        white space do not count).

    Examples
    --------
    >>> load_key("secrets/pseudonym.key")  # doctest: +SKIP
    """
    p = key_path(key_file)
    if p is not None:
        if not p.is_file():
            raise InputError(f"pseudonym key file not found: {p} (create one with `crmresearch keygen {p}`)")
        key = p.read_bytes().strip()
        if not key:
            raise InputError(f"pseudonym key file {p} is empty")
        return _checked(key, f"in {p}")
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return _checked(env.encode(), f"in ${KEY_ENV}")
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
