"""The workers of a run: the local process pool or a Dask cluster behind one loop, with progress and clean-up."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmresearch.batch.engines import prepare_worker
from crmresearch.batch.kernels import _PRESTART, _WARM, shutdown_warm_kernels
from crmresearch.batch.pdf import close_browsers, kill_browsers
from crmresearch.batch.tasks import ReportTask, _now, run_task
from crmresearch.core.errors import InputError


class _Progress:
    """A tqdm bar on a terminal; plain ``[k/n] name done in s`` lines otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self.enabled = total, 0, enabled and total > 0
        self.tty = sys.stderr.isatty()
        self.bar = None
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="report", file=sys.stderr, dynamic_ncols=True)

    def update(self, res: dict) -> None:
        self.n += 1
        if not self.enabled:
            return
        what = "done" if res["status"] == "done" else "FAILED"
        line = f"[{self.n}/{self.total}] {res['name']} {what} in {res['duration_seconds']:.1f} s"
        if res["error"]:
            line += f": {res['error'].splitlines()[0][:300]}"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{res['name']} {what}", refresh=False)
            self.bar.update(1)
            if res["error"]:
                self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kill_workers(executor: object) -> None:
    """Kill a process pool's workers and their children (the kernels), by process id."""
    import psutil

    for proc in list(getattr(executor, "_processes", {}).values() or []):
        try:
            p = psutil.Process(proc.pid)
            for child in p.children(recursive=True):
                child.kill()
            p.kill()
        except psutil.Error:
            pass


def _kill_warm_kernels() -> None:
    """Kill this process's warm kernels at once (the test-only abort: no orderly shutdown)."""
    import signal

    starting = [f.result() for f in _PRESTART.values() if f.done() and f.exception() is None]
    for k in [*_WARM.values(), *starting]:
        pid = getattr(k.km.provisioner, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _kill_children() -> None:
    """Kill this worker's warm kernels and browsers at once (it is orphaned, or the run was aborted)."""
    kill_browsers()
    _kill_warm_kernels()


def _init_worker(parent_pid: int) -> None:
    """A local worker process as it spawns: it dies with the run (:func:`crmresearch.batch.procs.init_worker`), then gets ready."""
    from crmresearch.batch.procs import init_worker

    init_worker(parent_pid, on_orphan=_kill_children)
    prepare_worker()


def _noop() -> None:
    """A task that makes a process pool spawn a worker (its initializer starts the warm kernel)."""


class _Workers:
    """Where a run's reports execute: this process, a local process pool or a Dask cluster.

    Local workers (and their warm kernels) are started when the run begins,
    before the bank stage, so that their start-up (importing the libraries in
    each kernel) overlaps reading or building the month bundle.
    """

    def __init__(self, workers: int, scheduler: str | None, connect_seconds: float = 30, *,
                 security: Any = None, retries: int = 1) -> None:  # fmt: skip
        self.workers, self.scheduler, self.executor, self.client = workers, scheduler, None, None
        self.retries, self._local_ready = retries, False
        if scheduler:
            self.client = _connect_scheduler(scheduler, connect_seconds, security)
            return
        if workers <= 1:
            prepare_worker()
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent holds DuckDB and BLAS threads, which forked children must not inherit
        # each worker dies with this process and leads a process group that holds its kernels
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(os.getpid(),))  # fmt: skip
        for _ in range(workers):  # one at a time while none is idle: every worker spawns now
            self.executor.submit(_noop)

    def run(self, tasks: list[ReportTask], on_result: Callable[[dict, object], None],
            bundle_path: Path | None = None) -> None:  # fmt: skip
        """Run ``tasks``, calling ``on_result`` per report as each completes.

        On a Dask cluster the branch reports travel as bytes and come back as
        bytes (:mod:`crmresearch.batch.remote`: ``bundle_path`` is packed);
        the bank summary, which reads the whole bank, runs here.
        """
        if not tasks:
            return
        if self.client is not None:
            self._run_on_cluster([t for t in tasks if t.scope == "branch"], on_result, bundle_path)
            for t in (t for t in tasks if t.scope != "branch"):
                if not self._local_ready:
                    prepare_worker()
                    self._local_ready = True
                on_result(run_task(t), None)
            return
        if self.executor is None:
            for t in tasks:
                on_result(run_task(t), None)
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        from crmresearch.batch.procs import raise_pending, signals_deferred

        # SIGTERM / Ctrl-C are held while waiting and recording (raised inside concurrent.futures, they could
        # leave one of its locks held and the shutdown hanging), and raised between results
        with signals_deferred():
            futures = {self.executor.submit(run_task, t): t for t in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a crashed worker fails that report only
                        res = _lost(futures[fut], exc)
                    on_result(res, self.executor)
                raise_pending()

    def _run_on_cluster(self, tasks: list[ReportTask], on_result: Callable[[dict, object], None],
                        bundle_path: Path | None) -> None:  # fmt: skip
        """The branch reports on the Dask cluster: nothing of the client's disk is needed there."""
        if not tasks:
            return
        if bundle_path is None:
            raise ValueError("a Dask run needs the month bundle to send")
        from distributed import as_completed as dask_completed

        from crmresearch.batch.remote import pack_bundle, publish_result, run_packed
        from crmresearch.core.privacy import load_key

        c = self.client
        tag = uuid.uuid4().hex[:8]
        common = c.scatter(pack_bundle(bundle_path), broadcast=True, hash=False)
        key = c.scatter(load_key(tasks[0].key_file), broadcast=True, hash=False)  # the file's, or $..._KEY
        notebooks: dict[str, Any] = {}
        futures: dict[Any, ReportTask] = {}

        def submit(t: ReportTask) -> Any:
            if t.notebook not in notebooks:
                notebooks[t.notebook] = c.scatter(Path(t.notebook).read_bytes(), broadcast=True, hash=False)
            # the slice goes inside the task, not scattered: a task whose worker is lost is redone elsewhere
            # from its own arguments (scattered data lives only where it was put, and dies with that worker)
            part = pack_bundle(bundle_path, t.parameters["branch"])
            fut = c.submit(run_packed, t, common, part, notebooks[t.notebook], key, bundle_path.name,
                           key=f"crmresearch-report-{t.name}-{tag}", pure=False, retries=self.retries)  # fmt: skip
            futures[fut] = t
            return fut

        # a bounded window of reports in flight: the client and the scheduler hold a few slices, not the bank's
        window = max(4, 2 * len(c.scheduler_info().get("workers", {}) or [0]))
        queue = list(tasks)
        done = dask_completed([submit(queue.pop(0)) for _ in range(min(window, len(queue)))])
        for fut in done:
            try:
                res = publish_result(futures[fut], fut.result())
            except Exception as exc:  # noqa: BLE001 - a report lost beyond its retries fails that report only
                res = _lost(futures[fut], exc)
            del futures[fut]
            if queue:
                done.add(submit(queue.pop(0)))
            on_result(res, None)

    def close(self) -> None:
        """Stop the workers and their kernels (or leave the Dask cluster)."""
        if self.client is not None:
            self.client.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        shutdown_warm_kernels()
        close_browsers()

    def kill(self) -> None:
        """Stop the workers and their kernels now, without waiting for running reports (the run was interrupted)."""
        from crmresearch.batch.procs import signals_deferred, stop_group

        with signals_deferred(raise_after=False):  # a second Ctrl-C does not stop the stopping
            if self.executor is not None:
                stop_group([p.pid for p in list(getattr(self.executor, "_processes", {}).values() or [])])
                self.executor.shutdown(wait=True, cancel_futures=True)
            _kill_children()
            shutdown_warm_kernels()
            close_browsers()


def _connect_scheduler(address: str, seconds: float, security: Any = None) -> Any:
    """A Dask client of the scheduler at ``address``, or an InputError when none answers within ``seconds``.

    A bare connection is tried first (in a thread of its own, so it works
    under a running event loop, as in Jupyter): a ``Client`` that fails to
    connect prints a second traceback when it is garbage-collected.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect

    async def probe() -> None:
        args = security.get_connection_args("client") if security is not None else {}
        comm = await connect(address, timeout=seconds, **args)
        await comm.close()

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
        return Client(address, timeout=seconds, security=security)
    except ValueError as exc:  # not an address: no scheme or port, unknown scheme
        raise InputError(f"--scheduler {address}: not a Dask scheduler address ({exc}); e.g. tcp://host:8786") from None
    except OSError:
        raise InputError(f"--scheduler {address}: no Dask scheduler answered within {seconds:g} s "
                         "(engine.scheduler_connect_seconds); is it running, and is the address right?") from None  # fmt: skip


def _lost(task: ReportTask, exc: BaseException) -> dict:
    now = _now()
    return {"name": task.name, "status": "failed", "pdf": False,
            "error": f"{type(exc).__name__}: {exc} (worker lost)",
            "started": now, "finished": now, "duration_seconds": 0.0}  # fmt: skip
