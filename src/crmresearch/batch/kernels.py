"""Warm kernels: one Jupyter kernel per worker that renders report after report, reset between them,
and the papermill engine that runs a notebook on it (or on a fresh kernel)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from concurrent.futures import Future

# --------------------------------------------------------------------------- warm kernels

#: set to 1 to execute every report in a fresh kernel (the behaviour before warm kernels; slower)
FRESH_ENV = "CRMRESEARCH_FRESH_KERNELS"

# Runs once in a new warm kernel: imports the heavy libraries and records the state a report may
# change, with the function that restores it before each report (kept in sys.modules, which
# IPython's namespace reset does not touch).
_WARM_SETUP = r'''
def _crmresearch_warm_setup():
    import copy, gc, os, sys, types, warnings
    import numpy, pandas, matplotlib, matplotlib.pyplot, seaborn, lifelines, scipy.stats
    import crmresearch.report.reports, crmresearch.viz.plots, crmresearch.month.bundle, crmresearch.viz.i18n
    from IPython import get_ipython
    from pandas._config import config as pdcfg

    ip = get_ipython()

    def pd_options():
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in list(pdcfg._registered_options):
                try:
                    out[k] = copy.deepcopy(pandas.get_option(k))
                except Exception:
                    pass
        return out

    def own(name, mod):  # a module the report imported from outside the environment (its own code)
        f = getattr(mod, "__file__", None) or ""
        return not name.startswith("crmresearch") and f and not any(
            f.startswith(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})

    st = types.SimpleNamespace(rc=dict(matplotlib.rcParams), pd=pd_options(), warnings=list(warnings.filters),
                               np_err=numpy.geterr(), np_print=numpy.get_printoptions(),
                               path=list(sys.path), modules=set(sys.modules))

    def reset(cwd, environ):
        os.chdir(cwd)  # first: the previous report's folder is gone
        matplotlib.pyplot.close("all")
        ip.reset(new_session=False)
        ip.execution_count = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matplotlib.rcParams.clear()
            matplotlib.rcParams.update(st.rc)
            for k, v in st.pd.items():
                try:
                    if pandas.get_option(k) != v:
                        pandas.set_option(k, copy.deepcopy(v))
                except Exception:
                    pass
        warnings.filters[:] = st.warnings
        warnings._filters_mutated()
        numpy.seterr(**st.np_err)
        numpy.set_printoptions(**st.np_print)
        if dict(os.environ) != environ:  # the worker's environment now, as a fresh kernel would inherit
            os.environ.clear()
            os.environ.update(environ)
        sys.path[:] = st.path
        for name in [n for n in sys.modules if n not in st.modules]:
            if own(name, sys.modules[name]):
                del sys.modules[name]
        gc.collect()

    mod = types.ModuleType("_crmresearch_warm")
    mod.reset, mod.state = reset, st
    sys.modules["_crmresearch_warm"] = mod


_crmresearch_warm_setup()
del _crmresearch_warm_setup
'''


class _WarmKernel:
    """One Jupyter kernel kept by a worker (process or thread), libraries imported, reset between reports."""

    def __init__(self) -> None:
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_core.utils import run_sync

        from crmresearch.batch.procs import KERNEL_ARGUMENTS, LocalKernelManager

        # nbclient drives the kernel with the async client this manager makes; the reset uses a blocking one.
        # IPC sockets in a private folder (no TCP), no IPython history (kernels kept warm would share it)
        self.km = LocalKernelManager(kernel_name="python3")
        run_sync(self.km.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS))
        try:
            self.kc = BlockingKernelClient()
            self.kc.load_connection_info(self.km.get_connection_info())
            # no heartbeat: under load a missed beat reads as "kernel died"; the manager watches the process
            self.kc.start_channels(hb=False)
            self.kc.wait_for_ready(timeout=60)
            self.kc.allow_stdin = False
            self._run(_WARM_SETUP, 180)
        except BaseException:
            self.shutdown()
            raise

    def _run(self, code: str, timeout: float) -> None:
        reply = self.kc.execute_interactive(code, silent=True, store_history=False, timeout=timeout,
                                            output_hook=lambda msg: None)  # fmt: skip
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"warm kernel: {content.get('ename')}: {content.get('evalue')}")

    def reset(self, cwd: str, timeout: float, env: dict[str, str] | None = None) -> None:
        """Clear what the previous report left: namespace, figures, rcParams, pandas options, ...

        The kernel's environment becomes the worker's, plus ``env`` (the report's own variables).
        """
        env = json.dumps({**os.environ, "JPY_PARENT_PID": str(os.getpid()), **(env or {})})
        self._run(f"__import__('sys').modules['_crmresearch_warm'].reset({cwd!r}, __import__('json').loads({env!r}))",
                  timeout)  # fmt: skip

    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        try:
            return bool(run_sync(self.km.is_alive)())
        except Exception:  # noqa: BLE001
            return False

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            run_sync(self.km.shutdown_kernel)(now=True)


_WARM: dict[tuple[int, int], _WarmKernel] = {}
_WARM_EXIT_REGISTERED: set[int] = set()
# kernels being started in the background (prestart_warm_kernel), by the worker that will use them;
# a start no longer wanted (the run ended first) is abandoned: its kernel is shut down once up
_PRESTART: dict[tuple[int, int], Future] = {}
_ABANDONED: set[int] = set()
_PRESTART_LOCK = threading.Lock()


def _warm_key() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _register_exit() -> None:
    if os.getpid() not in _WARM_EXIT_REGISTERED:  # process pool workers skip atexit: Finalize runs there
        import atexit
        from multiprocessing import util

        _WARM_EXIT_REGISTERED.add(os.getpid())
        atexit.register(shutdown_warm_kernels)
        util.Finalize(None, shutdown_warm_kernels, exitpriority=10)


def prestart_warm_kernel(key: tuple[int, int] | None = None) -> None:
    """Start the warm kernel of a worker in the background, so its start-up overlaps other work.

    The run calls it before the bank stage (for itself, or in each local
    worker process as it spawns): the kernel imports the libraries while the
    month bundle is read or built.  The worker's first report waits for it
    (or starts a kernel itself if this one failed).  No-op with
    ``CRMRESEARCH_FRESH_KERNELS=1`` or when the worker has a kernel.

    Parameters
    ----------
    key : tuple of int, optional
        The worker (process id, thread id) that will use the kernel
        (default: the calling thread).

    Examples
    --------
    >>> prestart_warm_kernel()  # doctest: +SKIP
    """
    if os.environ.get(FRESH_ENV, "") not in ("", "0"):
        return
    key = key or _warm_key()
    if key in _WARM or key in _PRESTART:
        return
    # imported here, not in the thread: a module imported by two threads at once can be seen half-made
    import jupyter_client.blocking  # noqa: F401
    import jupyter_core.utils  # noqa: F401
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401
    from jupyter_client import AsyncKernelManager  # noqa: F401

    from crmresearch.batch.procs import kernel_manager_class

    kernel_manager_class()
    fut: Future = Future()

    def start() -> None:
        try:
            k = _WarmKernel()
        except BaseException as exc:  # noqa: BLE001 - the first report starts a kernel itself
            fut.set_exception(exc)
            return
        finally:  # the event loop jupyter_client's calls made for this thread: not used again
            with contextlib.suppress(Exception):
                jupyter_core.utils.ensure_event_loop().close()
        with _PRESTART_LOCK:
            abandoned = id(fut) in _ABANDONED
            _ABANDONED.discard(id(fut))
            if not abandoned:
                fut.set_result(k)
        if abandoned:
            k.shutdown()
            fut.set_exception(RuntimeError("the run ended before its warm kernel was used"))

    _PRESTART[key] = fut
    _register_exit()
    threading.Thread(target=start, name="crmresearch-warm-kernel", daemon=True).start()


def _warm_kernel() -> _WarmKernel:
    """This worker's warm kernel (the prestarted one, else started on first use; a dead one is replaced)."""
    key = _warm_key()
    k = _WARM.get(key)
    if k is not None and not k.alive():
        _drop_warm_kernel()
        k = None
    if k is None:
        fut = _PRESTART.pop(key, None)
        if fut is not None:
            with contextlib.suppress(Exception):
                k = fut.result()
        k = _WARM[key] = k if k is not None and k.alive() else _WarmKernel()
        _register_exit()
    return k


def _drop_warm_kernel() -> None:
    """Shut down this worker's warm kernel (after a failed or timed-out report: the next one starts afresh)."""
    k = _WARM.pop(_warm_key(), None)
    if k is not None:
        k.shutdown()


def shutdown_warm_kernels() -> None:
    """Shut down every warm kernel of this process (one still starting is shut down as soon as it is up)."""
    pid = os.getpid()
    for key in [k for k in _PRESTART if k[0] == pid]:
        fut = _PRESTART.pop(key)
        with _PRESTART_LOCK:
            if not fut.done():  # still starting: not waited for; shut down as soon as it is up
                _ABANDONED.add(id(fut))
                continue
        if fut.exception() is None:
            fut.result().shutdown()
    for key in [k for k in _WARM if k[0] == pid]:
        _WARM.pop(key).shutdown()


def _engine(warm: bool) -> str:
    """Register (once) the papermill engines of the reports; the name of the warm or the fresh one.

    Both write the executed notebook once, when it completes or fails
    (papermill's own engines rewrite the whole notebook, figures included,
    at the start and end of every cell: about a second per report); a
    notebook that fails or times out is still written, with what ran.  The
    warm one executes on a given warm kernel (:class:`_WarmKernel`), which
    it neither starts nor shuts down.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    name = "crmresearch-warm" if warm else "crmresearch-fresh"
    if name in papermill_engines._engines:
        return name

    class FinalSave(NotebookExecutionManager):
        def save(self, **kwargs):
            if self.end_time is not None:  # set by notebook_complete, which runs whatever happened
                super().save(**kwargs)

    class FreshEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     kernel_env=None, **kwargs):  # fmt: skip
            from papermill.log import logger

            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            client = PapermillNotebookClient(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                                             kernel_name=kernel_name, log=logger, log_output=log_output,
                                             stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)  # fmt: skip
            # the new kernel's environment: this process's plus the report's own variables
            return client.execute(env={**os.environ, **(kernel_env or {})})

        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):  # fmt: skip
            nb_man = FinalSave(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                               autosave_cell_every=autosave_cell_every)  # fmt: skip
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    class WarmEngine(FreshEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     warm_kernel=None, **kwargs):  # fmt: skip
            from papermill.log import logger

            kwargs = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
            # km given: nbclient neither starts nor shuts down the kernel
            client = PapermillNotebookClient(nb_man, km=warm_kernel.km, timeout=execution_timeout,
                                             startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                             log_output=log_output, stdout_file=stdout_file,
                                             stderr_file=stderr_file, **kwargs)  # fmt: skip
            try:
                return client.execute()
            finally:  # the kernel stays (not ours to shut down); the client's channels go
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register("crmresearch-fresh", FreshEngine)
    papermill_engines.register("crmresearch-warm", WarmEngine)
    return name
