"""A month on a real Dask cluster whose workers share no disk with the client.

A ``dask scheduler`` and two ``dask worker`` processes are started on
127.0.0.1.  Each worker runs in a mount namespace of its own (``unshare -m``)
with a tmpfs over everything the client's run reads or writes: the tests'
whole temporary folder (the demo bank, the pseudonym key, the cache with
the month bundle and the font subset, the output and metrics folders) and
the client's ``~/.cache``.  Its HOME and TMPDIR are folders of its own.  So
a report can only be made from what travels in its task
(:mod:`crmresearch.batch.remote`), and the client's ``--out`` can only get it
from what the worker sends back.

Checked: every report lands in the client's ``--out``; the metrics equal a
local run's byte for byte; a rerun skips every report; a worker killed while
it renders a report (its whole process group) does not stop the month, the
report is done by the other worker.  A TLS cluster (certificates made with
``openssl``) renders a branch, and bad cluster options are one-line errors.

Where mount namespaces are not permitted the module is skipped, except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmresearch.batch.remote import check_key_transport, cluster_security
from crmresearch.core.errors import InputError
from crmresearch.data.demo import DemoConfig, write_demo_bank
from run_helpers import report_args

pytestmark = pytest.mark.slow

MONTH = "2026-10"
BIN = Path(sys.executable).parent
HIDE_HOME_CACHE = Path.home() / ".cache"


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"unshare -m is not permitted here: {r.stderr.strip()[:200]}"


_WHY = _can_unshare()
if _WHY and os.environ.get("CI") != "true":
    pytest.skip(_WHY, allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, seconds: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{path.name}: no {text!r} within {seconds} s:\n{path.read_text(errors='replace')[-3000:]}")


@dataclass
class Cluster:
    address: str
    procs: dict[str, subprocess.Popen]  # "scheduler", "w1", "w2"
    logs: Path
    tls: tuple[str, str, str] | None = None
    own: list[Path] | None = None  # the workers' HOME and TMPDIR folders

    def kill(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)

    def close(self) -> None:
        for name in ("w1", "w2", "scheduler"):
            if name in self.procs and self.procs[name].poll() is None:
                os.killpg(self.procs[name].pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for d in [*(self.own or []), self.logs]:
            shutil.rmtree(d, ignore_errors=True)


def _start(hidden: list[Path], logs: Path, workers: int = 2, tls: tuple[str, str, str] | None = None) -> Cluster:
    """A scheduler and ``workers`` workers on 127.0.0.1, each worker blind to ``hidden``."""
    assert _WHY is None, _WHY
    port = _free_port()
    address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{port}"
    sec = ["--tls-ca-file", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2]] if tls else []
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    cluster = Cluster(address, procs, logs, tls, [])
    try:
        with open(logs / "scheduler.log", "w") as log:
            procs["scheduler"] = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                                   str(port), "--no-dashboard", *sec],
                                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        _wait_for(logs / "scheduler.log", "Scheduler at", 60, procs["scheduler"])
        mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=000 none '{h}'" for h in hidden if h.is_dir())
        for i in range(1, workers + 1):
            own = Path(tempfile.mkdtemp(prefix=f"crm-worker{i}-"))
            cluster.own.append(own)
            env = {**os.environ, "HOME": str(own), "TMPDIR": str(own)}
            for k in ("CRMRESEARCH_CACHE", "CRMRESEARCH_PSEUDONYM_KEY", "CRMRESEARCH_PSEUDONYM_KEY_FILE"):
                env.pop(k, None)
            worker = f"exec '{BIN / 'dask'}' worker {address} --nthreads 1 --no-dashboard --name w{i} " + " ".join(
                f"'{a}'" for a in sec)
            with open(logs / f"w{i}.log", "w") as log:
                procs[f"w{i}"] = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                                   f"{mounts} && {worker}" if mounts else worker],
                                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=own,
                                                  start_new_session=True)  # fmt: skip
        for i in range(1, workers + 1):
            _wait_for(logs / f"w{i}.log", "Registered to", 90, procs[f"w{i}"])
    except BaseException:
        cluster.close()
        raise
    return cluster


def _cli(*args: object, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crmresearch.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cluster")
    bank = write_demo_bank(base / "bank", DemoConfig(branches=3, customers_per_branch=300, months=24, seed=5))
    from crmresearch.core.privacy import new_key_file

    return {"base": base, "bank": bank, "key": new_key_file(base / "secret" / "pseudonym.key"),
            "cache": base / "cache", "hidden": tmp_path_factory.getbasetemp()}  # fmt: skip


@pytest.fixture(scope="module")
def cluster(world: dict[str, Path]):
    c = _start([world["hidden"], HIDE_HOME_CACHE], Path(tempfile.mkdtemp(prefix="crm-cluster-logs-")))
    yield c
    c.close()


def _args(world: dict[str, Path], out: Path, *more: object) -> list[str]:
    return report_args(world["bank"], out, world["key"], world["cache"], *map(str, more), month=MONTH)


def test_a_month_on_workers_that_share_no_disk(world: dict[str, Path], cluster: Cluster) -> None:
    base = world["base"]
    local = _cli(*_args(world, base / "local", "--workers", "2", "--metrics-dir", base / "m-local"))
    assert local.returncode == 0, local.stderr
    run = _cli(*_args(world, base / "out", "--scheduler", cluster.address, "--metrics-dir", base / "m-cluster"))
    assert run.returncode == 0, run.stderr + (cluster.logs / "w1.log").read_text()[-3000:]
    month = base / "out" / MONTH
    for rel in ["index.html", "bank.html", "manifest.json", *(f"branches/B00{i}.html" for i in (1, 2, 3)),
                *(f"notebooks/B00{i}.ipynb" for i in (1, 2, 3))]:  # fmt: skip
        assert (month / rel).is_file(), rel
    names = sorted(p.name for p in (base / "m-local" / MONTH).iterdir())
    assert names == ["B001.json", "B002.json", "B003.json", "bank.json"]
    for n in names:
        assert (base / "m-cluster" / MONTH / n).read_bytes() == (base / "m-local" / MONTH / n).read_bytes(), n
    # the reports were made on the workers, from what travelled: their logs know no client path
    for w in ("w1", "w2"):
        log = (cluster.logs / f"{w}.log").read_text(errors="replace")
        assert str(world["bank"]) not in log and "not a month bundle" not in log, log[-2000:]
    again = _cli(*_args(world, base / "out", "--scheduler", cluster.address))
    assert again.returncode == 0, again.stderr
    assert "0 report(s) done, 5 skipped" in again.stderr, again.stderr


def test_a_worker_killed_mid_report_does_not_stop_the_month(world: dict[str, Path], cluster: Cluster) -> None:
    from distributed import Client

    out = world["base"] / "out-kill"
    proc = subprocess.Popen([sys.executable, "-m", "crmresearch.cli",
                             *_args(world, out, "--scheduler", cluster.address, "--force")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    killed = None
    with Client(cluster.address, timeout=30) as client:
        end = time.monotonic() + 300
        while killed is None and time.monotonic() < end and proc.poll() is None:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            for addr, keys in client.processing().items():
                if any(str(k).startswith("crmresearch-report-") for k in keys):
                    time.sleep(1.0)  # well into the report
                    killed = names[addr]
                    cluster.kill(killed)
                    break
            time.sleep(0.1)
    stdout, stderr = proc.communicate(timeout=900)
    assert killed is not None, "no report was seen running on a worker"
    assert proc.returncode == 0, stderr
    assert "5 report(s) done, 0 skipped (unchanged), 0 failed" in stderr, stderr
    for i in (1, 2, 3):
        assert (out / MONTH / "branches" / f"B00{i}.html").is_file()


def _certs(folder: Path) -> tuple[str, str, str]:
    """A CA and one certificate for 127.0.0.1 signed by it (openssl), for scheduler, workers and client."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "node.key", "node.csr", "node.pem"))
    run = lambda *a: subprocess.run(["openssl", *map(str, a)], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=crmresearch-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)  # fmt: skip
    return str(ca), str(cert), str(key)


@pytest.mark.skipif(shutil.which("openssl") is None and os.environ.get("CI") != "true", reason="no openssl")
def test_a_tls_cluster_renders_a_branch(world: dict[str, Path]) -> None:
    certs = Path(tempfile.mkdtemp(prefix="crm-tls-"))
    tls = _certs(certs)
    c = _start([world["hidden"], HIDE_HOME_CACHE], Path(tempfile.mkdtemp(prefix="crm-tls-logs-")), workers=1, tls=tls)
    try:
        out = world["base"] / "out-tls"
        plain = _cli(*_args(world, out, "--scheduler", c.address, "--branch", "B002"))
        assert plain.returncode == 2 and "needs --tls-ca, --tls-cert and --tls-key" in plain.stderr, plain.stderr
        r = _cli(*_args(world, out, "--scheduler", c.address, "--branch", "B002", "--tls-ca", tls[0], "--tls-cert",
                        tls[1], "--tls-key", tls[2]))  # fmt: skip
        assert r.returncode == 0, r.stderr + (c.logs / "w1.log").read_text()[-3000:]
        assert (out / MONTH / "branches" / "B002.html").is_file()
    finally:
        c.close()
        shutil.rmtree(certs, ignore_errors=True)


@pytest.mark.parametrize(
    ("scheduler", "tls", "message"),
    [
        (None, ("a", "b", "c"), "need --scheduler tls://"),
        ("tls://10.0.0.5:8786", None, "needs --tls-ca, --tls-cert and --tls-key"),
        ("tcp://10.0.0.5:8786", None, "the pseudonym key would travel to the workers in clear"),
        ("dask.bank.internal:8786", None, "in clear"),
        ("tls://10.0.0.5:8786", ("/no/ca.pem", "/no/c.pem", "/no/k.pem"), "--tls-ca /no/ca.pem: no such file"),
        ("tls://10.0.0.5:8786", ("x", "", ""), "missing: --tls-cert, --tls-key"),
    ],
)
def test_bad_cluster_options_are_one_clear_error(scheduler: str | None, tls: tuple | None, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("+", r"\+")):
        cluster_security(scheduler, tls)


def test_the_key_may_travel_over_loopback_or_tls_only() -> None:
    for ok in ("tcp://127.0.0.1:8786", "tcp://localhost:1", "tls://dask.bank.internal:8786", "tcp://[::1]:8786"):
        check_key_transport(ok, tls=False, key=True)
    check_key_transport("tcp://10.1.2.3:8786", tls=False, key=False)
    with pytest.raises(InputError, match="in clear"):
        check_key_transport("tcp://10.1.2.3:8786", tls=False, key=True)
