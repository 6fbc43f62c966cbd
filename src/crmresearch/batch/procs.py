"""The processes and temporary folders of a report run, and the lock on its output folder.

A run (``crmresearch report``) starts worker processes, each with a Jupyter
kernel, and DuckDB connections that spill to the temporary folder.  Whatever
happens to the run, none of them outlives it:

* **Workers die with their parent.**  A worker (:func:`init_worker`) asks
  Linux for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and
  watches its parent's pid from a thread as well; either way it kills its
  kernels, removes its folders and ends.  It leads a process group of its
  own, its kernels are started in that group (:class:`LocalKernelManager`),
  so one ``killpg`` reaches them, and Ctrl-C at the terminal reaches only
  the run's parent, which stops its workers itself.
* **Kernels** listen on IPC sockets (never TCP) in a private (0700)
  folder of the process that started them, removed at exit; their IPython
  history database is off (kernels kept warm would otherwise share it).
* **Temporary folders** (``crmresearch-duckdb-<pid>-*``,
  ``crmresearch-kernels-<pid>-*``) carry their process id: each process
  removes its own at exit, and :func:`sweep` removes those of processes
  that no longer exist (a kernel or a worker that was killed).
* **The output folder is locked** (:class:`FolderLock`): two runs into the
  same month folder never interleave; a lock left by a dead process is
  broken.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmresearch.core.errors import InputError
from crmresearch.core.scratch import _remove_own_dirs, process_dir, spill_dir, sweep

__all__ = ["FolderLock", "LocalKernelManager", "RunLocked", "init_worker", "process_dir", "spill_dir", "sweep"]  # scratch re-exported for the run

#: arguments every kernel of a run starts with: quiet, no IPython history database
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.enabled=False"]
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- kernels


def _kernel_classes() -> tuple[type, type]:
    from jupyter_client import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from jupyter_core.utils import run_sync

    class GroupProvisioner(LocalProvisioner):
        """Starts the kernel in this process's group when this process leads one (a run's worker)."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any):
            # what the kernel process itself prints (not its cells' output, which comes over its sockets) never
            # reaches the run's stderr: a kernel still starting when a run stops on bad input would print a
            # traceback of its vanished socket folder
            kwargs.setdefault("stdout", subprocess.DEVNULL)
            kwargs.setdefault("stderr", subprocess.DEVNULL)
            if not _IN_GROUP or os.getpgid(0) != os.getpid():
                return await super().launch_kernel(cmd, **kwargs)
            kw = self._scrub_kwargs(kwargs)
            env = dict(kw.pop("env", None) or os.environ)
            env["JPY_PARENT_PID"] = str(os.getpid())  # ipykernel ends when this process does
            stdin = kw.pop("stdin", None)
            self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is None else stdin, env=env,
                                            process_group=os.getpgid(0), **kw)  # fmt: skip
            self.pid = self.process.pid
            self.pgid = None  # signals go to the kernel alone, never to the group (this worker is in it)
            self.cwd = kwargs.get("cwd") or os.getcwd()
            return self.connection_info

    class Manager(AsyncKernelManager):
        def __init__(self, **kw: Any) -> None:
            kw.setdefault("transport", "ipc")
            kw.setdefault("connection_file", str(process_dir("kernels") / f"k-{uuid.uuid4().hex[:8]}.json"))
            super().__init__(**kw)

        async def _async_pre_start_kernel(self, **kw: Any):
            if self.provisioner is None:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
                self.provisioner = GroupProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
            return await super()._async_pre_start_kernel(**kw)

        pre_start_kernel = run_sync(_async_pre_start_kernel)

    return GroupProvisioner, Manager


_CLASSES: list[type] = []


def LocalKernelManager(**kw: Any):  # noqa: N802 - a class, made on first use (jupyter_client is imported late)
    """A Jupyter kernel manager for a run's local kernels.

    An ``AsyncKernelManager`` whose kernel listens on IPC sockets beside a
    connection file in this process's private ``kernels`` folder
    (:func:`process_dir`), never on TCP; in a run's worker the kernel is
    started in the worker's process group.  Pass it ``kernel_name`` etc.
    as to ``AsyncKernelManager``; the class itself is
    ``LocalKernelManager.cls()``.

    Examples
    --------
    >>> km = LocalKernelManager(kernel_name="python3")  # doctest: +SKIP
    >>> km.transport  # doctest: +SKIP
    'ipc'
    """
    return kernel_manager_class()(**kw)


def kernel_manager_class() -> type:
    """The class :func:`LocalKernelManager` makes (for nbclient's ``kernel_manager_class``)."""
    if not _CLASSES:
        _CLASSES.extend(_kernel_classes())
    return _CLASSES[1]


# --------------------------------------------------------------------------- workers

_IN_GROUP = False
_ORPHAN_LOCK = threading.Lock()
_on_orphan: list[Callable[[], None]] = []


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _orphaned(*_: object) -> None:
    """The parent is gone: stop the kernels, remove the folders, end this process and its group."""
    if not _ORPHAN_LOCK.acquire(blocking=False):
        return
    for fn in _on_orphan:
        with contextlib.suppress(BaseException):
            fn()
    with contextlib.suppress(BaseException):  # reap the killed kernels: the sweep takes a dead one's folders
        import psutil

        psutil.wait_procs(psutil.Process().children(), timeout=2)
    with contextlib.suppress(BaseException):
        _remove_own_dirs()
        sweep()
    with contextlib.suppress(OSError):
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def init_worker(parent_pid: int, on_orphan: Callable[[], None] | None = None) -> None:
    """Make this process (a run's worker) die with its parent, and lead a process group of its own.

    When the parent dies (even by ``SIGKILL``), or sends ``SIGTERM``, the
    worker calls ``on_orphan`` (which stops its kernels), removes its
    temporary folders and those of dead processes (:func:`sweep`), and kills
    its process group (its kernels are in it) and itself.  Linux delivers a
    signal on the parent's death (``PR_SET_PDEATHSIG``); a thread also
    polls the parent's pid, elsewhere and as a second line.

    Parameters
    ----------
    parent_pid : int
        The run's process.
    on_orphan : callable, optional
        Run first when the worker must end.

    Examples
    --------
    >>> init_worker(os.getppid())  # doctest: +SKIP
    """
    global _IN_GROUP
    if on_orphan is not None:
        _on_orphan.append(on_orphan)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _IN_GROUP = os.getpgid(0) == os.getpid()
    signal.signal(signal.SIGTERM, _orphaned)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _set_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        _orphaned()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        _orphaned()

    threading.Thread(target=watch, name="crmresearch-parent-watch", daemon=True).start()


def stop_group(pids: list[int], grace: float = 3.0) -> None:
    """End worker processes and their process groups: ``SIGTERM`` first, ``SIGKILL`` after ``grace`` seconds.

    Parameters
    ----------
    pids : list of int
        Workers made by :func:`init_worker` (group leaders).
    grace : float
        Seconds to wait before killing what is left.
    """
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    alive = _wait_gone(procs, grace)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    _wait_gone(alive, grace)


def _wait_gone(procs: list, timeout: float) -> list:
    """Wait until the processes have ended (a zombie counts as ended); those still running.

    Never reaps them (``psutil.wait_procs`` would): their parent's own
    bookkeeping (multiprocessing's) must see them exit.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# --------------------------------------------------------------------------- the run's signals


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (``SIGTERM``, or ``SIGINT``: Ctrl-C); its exit status is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_DEFER = threading.local()


@contextlib.contextmanager
def terminate_raises():
    """Within the block, ``SIGTERM`` and ``SIGINT`` raise :class:`RunInterrupted` in the main thread.

    Inside :func:`signals_deferred` the exception waits for a safe point
    (the end of that block, or :func:`raise_pending`).  No-op outside the
    main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if getattr(_DEFER, "depth", 0):
            _DEFER.pending = signum
            return
        raise RunInterrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _DEFER.pending = None


def raise_pending() -> None:
    """Raise :class:`RunInterrupted` now if a signal arrived while deferred."""
    signum = getattr(_DEFER, "pending", None)
    if signum is not None:
        _DEFER.pending = None
        raise RunInterrupted(signum)


@contextlib.contextmanager
def signals_deferred(raise_after: bool = True):
    """Within the block a run's ``SIGTERM``/``SIGINT`` is held (not raised mid-way through a lock or a write).

    Used while a run waits for its workers' results (an exception raised
    inside ``concurrent.futures`` could leave a lock held) and while it
    stops them.  The held signal is raised at the end (``raise_after``) or
    by :func:`raise_pending`.
    """
    _DEFER.depth = getattr(_DEFER, "depth", 0) + 1
    try:
        yield
    finally:
        _DEFER.depth -= 1
    if raise_after and not _DEFER.depth:
        raise_pending()


# --------------------------------------------------------------------------- the output folder's lock


class RunLocked(InputError):
    """Another run holds the output folder's lock (the message names its pid; exit status 2).

    Examples
    --------
    >>> issubclass(RunLocked, InputError)
    True
    """


class FolderLock:
    """An exclusive lock on a run's output folder (``<folder>/.lock``, ``flock``).

    The kernel releases a ``flock`` when its holder dies, so a lock left by a
    killed run is broken by the next one; the file records the holder's pid
    for the message.  Folders this lock created are removed again on
    release when nothing else was written into them (input refused after
    the lock was taken).

    Parameters
    ----------
    folder : Path
        The folder to lock (made if needed).
    wait : bool
        Wait for the holder to finish instead of refusing at once.
    say : callable, optional
        Where the waiting message goes.

    Raises
    ------
    RunLocked
        (on entering) another run holds the lock and ``wait`` is false.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with FolderLock(d / "2026-10"):
    ...     (d / "2026-10" / ".lock").is_file()
    True
    >>> (d / "2026-10").exists()
    False
    """

    NAME = ".lock"

    def __init__(self, folder: str | Path, *, wait: bool = False, say: Callable[[str], None] | None = None) -> None:
        self.folder, self.wait, self.say = Path(folder), wait, say or (lambda m: None)
        self.fd: int | None = None
        self.created: list[Path] = []

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.folder / self.NAME

    def holder(self) -> str:
        """What the lock file says about its holder (``pid N since T``), or ``unknown``.

        Examples
        --------
        >>> FolderLock("/nonexistent/2026-10").holder()
        'unknown'
        """
        try:
            text = self.path.read_text(encoding="utf-8").split()
        except OSError:
            return "unknown"
        return f"pid {text[0]} since {text[1]}" if len(text) >= 2 else "unknown"

    def __enter__(self) -> FolderLock:
        self.created = []
        try:
            while True:
                self._make_folder()  # again after a wait: the run waited for may have removed the folder
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        os.close(fd)
                        raise
                    who = self.holder()
                    if not self.wait:
                        os.close(fd)
                        raise RunLocked(f"{self.folder} is being written by another crmresearch run ({who}); "
                                        "wait for it to end, or use --wait") from None  # fmt: skip
                    self.say(f"waiting for the run writing {self.folder} ({who}) to end ...")
                    fcntl.flock(fd, fcntl.LOCK_EX)
                # the holder we waited for may have removed the file: lock the one at the path
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {dt.datetime.now().astimezone().isoformat(timespec='seconds')}\n".encode())
            self.fd = fd
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still held: a waiter then finds it gone and locks a new one
            os.close(self.fd)
            self.fd = None
        self._remove_created()

    def _make_folder(self) -> None:
        missing = []
        p = self.folder
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        self.folder.mkdir(parents=True, exist_ok=True)
        self.created = missing + [d for d in self.created if d not in missing]  # deepest first

    def _remove_created(self) -> None:
        for d in self.created:  # only if still empty: nothing was written
            with contextlib.suppress(OSError):
                d.rmdir()
        self.created = []
