"""Worker processes with one thread each, for the commands that use every core (simulate, fit, benchmark).

Processes are started with "spawn" (safe with torch and OpenMM already imported), and each runs
torch and OpenMM on one thread, so that N workers use N cores and do not fight over them.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENMM_CPU_THREADS")


def _one_thread() -> None:
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` single-threaded processes (use it as a context manager).

    Raises
    ------
    ValueError
        ``workers`` below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    return ProcessPoolExecutor(max_workers=int(workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_one_thread)
