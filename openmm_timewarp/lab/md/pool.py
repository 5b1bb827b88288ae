"""Many peptides: run ``simulate`` over a list of sequences, in shards and worker processes.

A list of sequences is split into ``n`` disjoint shards (``--shard i/n`` on the command line) so
that several machines or jobs can share one data set, and each shard's runs go to worker
processes with one thread each. Runs are independent and resumable, so rerunning a shard
continues its unfinished runs; one failed peptide does not stop the others.
"""

import os
from concurrent.futures import as_completed
from typing import Dict, Iterable, List, Sequence, Tuple

from .. import systems
from ..workers import worker_pool
from .simulate import RunResult, simulate


def parse_shard(text: str) -> Tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n) into ``(i, n)``.

    Raises
    ------
    ValueError
        Not of that form.
    """
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' with 0 <= i < n (e.g. '0/4'), got {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < n.")
    return index, count


def shard_sequences(sequences: Iterable[str], index: int = 0, count: int = 1) -> List[str]:
    """This shard's share of a list of sequences.

    The sequences are upper-cased, de-duplicated and sorted; shard ``index`` of ``count`` takes
    every ``count``-th one from position ``index``. The shards of one list are disjoint and
    cover it, whatever order the list was given in.

    Parameters
    ----------
    sequences : iterable of str
    index, count : int
        0 <= index < count.

    Returns
    -------
    list of str
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count.")
    unique = sorted({s.strip().upper() for s in sequences})
    return unique[index::count]


def _run_one(sequence: str, output: str, kwargs: dict) -> RunResult:
    name = systems.peptide_name(sequence, kwargs.get("capped", False)) if sequence else "?"
    try:
        return simulate(output, sequence, **kwargs)
    except Exception as error:  # one bad peptide must not stop the others
        return RunResult(name, os.path.join(output, name), error=f"{type(error).__name__}: {error}")


def simulate_many(sequences: Sequence[str], output: str, *, workers: int = 1, shard: Tuple[int, int] = (0, 1),
                  progress: bool = True, **kwargs) -> List[RunResult]:
    """Run ``simulate`` for many peptides, in worker processes with one thread each.

    Parameters
    ----------
    sequences : sequence of str
        One-letter sequences (all capped or all uncapped, as ``kwargs["capped"]`` says).
    output : str
        Parent directory; each peptide goes to ``output/<name>``.
    workers : int
        Worker processes (one core each). 1 runs in this process.
    shard : (int, int)
        ``(i, n)``: run only shard i of n (see ``shard_sequences``).
    progress : bool
        Per-run progress bars (one worker), or a bar over peptides (several).
    **kwargs
        Passed to ``simulate``.

    Returns
    -------
    list of RunResult
        In the order of this shard's sorted sequences; failed runs carry ``error``.
    """
    for sequence in sequences:
        systems.parse_sequence(sequence)  # fail early on bad input
    selected = shard_sequences(sequences, *shard)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if workers == 1 or len(selected) <= 1:
        return [_run_one(s, output, dict(kwargs, progress=progress)) for s in selected]
    from tqdm.auto import tqdm

    results: Dict[str, RunResult] = {}
    with worker_pool(workers) as pool:
        futures = {pool.submit(_run_one, s, output, dict(kwargs, progress=False)): s for s in selected}
        with tqdm(total=len(futures), unit="peptide", disable=not progress) as bar:
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                bar.set_postfix_str(result.name + (" failed" if result.error else ""), refresh=False)
                bar.update(1)
    return [results[s] for s in selected]
