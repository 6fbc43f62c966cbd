"""``make lab`` (issue 17): the "crmresearch" kernel is registered and JupyterLab answers on 127.0.0.1.

The test runs the Makefile's own ``lab`` target with this venv (``BIN``; the install step is
taken as done, ``-o``) and every Jupyter folder in a temporary directory, so the user's kernels
and settings are not touched. JupyterLab gets a token and a free port; the test asks
``/api/status``, ``/api/kernelspecs`` and ``/api/contents`` with the token, then stops the server.
The server's process group is killed when the test ends, passed or failed; it also dies with the
test's process (``PR_SET_PDEATHSIG`` on make) and by itself after two idle minutes.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _get(url: str, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
        return r.status, json.loads(r.read().decode("utf-8"))


@pytest.mark.slow
def test_make_lab_registers_the_kernel_and_jupyterlab_answers(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on PATH")
    bin_dir = Path(sys.executable).parent
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "IPYTHONDIR": str(tmp_path / "ipython"), "JUPYTER_PLATFORM_DIRS": "1"}  # fmt: skip
    env.pop("JUPYTER_PATH", None)
    token, port = secrets.token_hex(16), _free_port()
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([make, "-s", "-o", ".venv/.installed-test", "lab", f"BIN={bin_dir}",
                                 f"LAB_PORT={port}", f"LAB_ARGS=--ServerApp.token={token} "
                                 "--ServerApp.shutdown_no_activity_timeout=120 --LabApp.news_url=None "
                                 "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
    try:
        spec = tmp_path / "data" / "kernels" / "crmresearch" / "kernel.json"
        base = f"http://127.0.0.1:{port}"
        status = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = _get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        shown = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        assert status is not None, f"JupyterLab did not answer on {base} (exit {proc.poll()}):\n{shown}"
        assert status[0] == 200 and "started" in status[1], status

        kernel = json.loads(spec.read_text(encoding="utf-8"))
        assert Path(kernel["argv"][0]).parent == bin_dir and "ipykernel_launcher" in kernel["argv"]
        assert kernel["display_name"] == "Python (crmresearch)"
        assert not (home / ".local" / "share" / "jupyter" / "kernels" / "crmresearch").exists()
        _, specs = _get(f"{base}/api/kernelspecs", token)
        assert "crmresearch" in specs["kernelspecs"], sorted(specs["kernelspecs"])
        _, contents = _get(f"{base}/api/contents", token)  # the server's root is notebooks/
        assert "explore_library.ipynb" in {c["name"] for c in contents["content"]}
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)  # noqa: S310
        assert no_token.value.code == 403
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    assert proc.poll() is not None
