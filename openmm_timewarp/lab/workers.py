"""Worker processes with one thread each, for the commands that use every core (simulate, fit, benchmark).

Processes are started with "spawn" (safe with torch and OpenMM already imported), and each runs
torch and OpenMM on one thread, so that N workers use N cores and do not fight over them.

Workers die with their parent, whatever ended it (SIGKILL included): each watches, in a daemon
thread, a pipe whose write end only the parent holds, and exits when it reads end-of-file. A pool
left by an exception (Ctrl-C included) cancels what is queued and kills its workers instead of
waiting for them.
"""

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENMM_CPU_THREADS")


def _exit_with_parent(reader) -> None:
    try:
        while True:
            reader.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _one_thread(reader=None) -> None:
    if reader is not None:
        threading.Thread(target=_exit_with_parent, args=(reader,), daemon=True, name="parent-watch").start()
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)


class WorkerPool(ProcessPoolExecutor):
    """A spawn :class:`~concurrent.futures.ProcessPoolExecutor` whose workers die with this process."""

    def __init__(self, workers: int):
        context = multiprocessing.get_context("spawn")
        self._reader, self._writer = context.Pipe(duplex=False)
        super().__init__(max_workers=int(workers), mp_context=context, initializer=_one_thread,
                         initargs=(self._reader,))

    def worker_pids(self):
        """Process ids of the workers started so far."""
        return [p.pid for p in (self._processes or {}).values()]

    def kill(self) -> None:
        """Cancel what is queued and kill the workers now (no waiting for running tasks)."""
        processes = list((self._processes or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(5.0)
        self._writer.close()

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.shutdown(wait=True)
            self._writer.close()
        else:
            self.kill()
        return False


def worker_pool(workers: int) -> WorkerPool:
    """A pool of ``workers`` single-threaded processes (use it as a context manager).

    The workers exit when this process dies, however it dies; leaving the ``with`` block by an
    exception (KeyboardInterrupt included) kills them rather than waiting for their tasks.

    Raises
    ------
    ValueError
        ``workers`` below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    return WorkerPool(workers)
