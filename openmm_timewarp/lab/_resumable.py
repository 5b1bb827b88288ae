"""Resumable folders: atomic writes, settings-checked records and a per-folder lock.

Every command that continues where it stopped (``simulate``, ``fit``, ``train``, ``peptide-data``,
``reference``, the benchmarks) writes its files through :func:`atomic_write`, so that a kill leaves
either the old file or the new one, never half of one; checks on resuming that it was started with
the same settings through :func:`check_settings` (or :class:`ResumableRecord`), so that every
refusal reads the same; and, where two processes could share a folder, takes :func:`folder_lock`.
"""

import errno
import json
import os
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Optional, Union

LOCK_FILE = ".lock"


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str, Callable], suffix: str = "") -> None:
    """Write ``path`` atomically: a temporary file in the same folder, fsync, then :func:`os.replace`.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    data : bytes, str or callable
        The content, or a function called with the temporary file's path that writes it (for writers
        such as :func:`numpy.savez` or :func:`torch.save` that take a path).
    suffix : str
        Suffix of the temporary file's name (``".npz"`` for :func:`numpy.savez`, which adds it otherwise).
    """
    path = os.fspath(path)
    # a unique name beside the target (same file system, so os.replace is atomic); created with the
    # process's umask like any other file
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}"
    try:
        if callable(data):
            data(tmp)
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
        else:
            with open(tmp, "xb") as out:
                out.write(data.encode("utf-8") if isinstance(data, str) else data)
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: Union[str, os.PathLike], obj: Any, indent: Optional[int] = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, json.dumps(obj, indent=indent))


def read_json(path: Union[str, os.PathLike], default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` where there is no such file."""
    if not os.path.isfile(path):
        return default
    with open(path) as handle:
        return json.load(handle)


def changed_settings(recorded: Dict[str, Any], requested: Dict[str, Any],
                     keys: Optional[Iterable[str]] = None) -> Dict[str, tuple]:
    """``{key: (recorded, requested)}`` for each of ``keys`` (default: the requested ones) that differs."""
    keys = list(requested if keys is None else keys)
    return {k: (recorded.get(k), requested.get(k)) for k in keys if recorded.get(k) != requested.get(k)}


def settings_message(directory, what: str, changed: Dict[str, tuple]) -> str:
    """The one message for a folder that holds work made with other settings."""
    details = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in changed.items())
    return (f"{str(directory)!r} holds {what} made with other settings ({details}); "
            "use another folder or the recorded settings.")


def check_settings(directory, what: str, recorded: Dict[str, Any], requested: Dict[str, Any],
                   keys: Optional[Iterable[str]] = None) -> None:
    """Refuse to resume work in ``directory`` made with other settings.

    Raises
    ------
    ValueError
        A setting differs; the message names each changed key (:func:`settings_message`).
    """
    changed = changed_settings(recorded, requested, keys)
    if changed:
        raise ValueError(settings_message(directory, what, changed))


class ResumableRecord:
    """A JSON record in a resumable folder, bound to the settings it was started with.

    Parameters
    ----------
    directory : str
        The folder (created if missing).
    filename : str
        The record's file in it.
    settings : dict
        The settings of this run; an existing record with other ones is refused.
    what : str
        What the folder holds, for the refusal's message (e.g. ``"a fit"``).
    key : str
        The record's entry that holds the settings.

    Attributes
    ----------
    data : dict
        The record (``data[key]`` holds the settings); change it, then :meth:`save`.

    Raises
    ------
    ValueError
        The folder's record was made with other settings.
    """

    def __init__(self, directory: str, filename: str, settings: Dict[str, Any], what: str = "a run",
                 key: str = "settings"):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, filename)
        self.data = read_json(self.path, {})
        if key in self.data:
            check_settings(self.directory, what, self.data[key], settings,
                           keys=sorted(set(settings) | set(self.data[key])))
        self.data[key] = settings

    def save(self) -> None:
        """Write the record atomically."""
        os.makedirs(self.directory, exist_ok=True)
        write_json_atomic(self.path, self.data)


@contextmanager
def folder_lock(directory: str, what: str = "another process"):
    """Hold an exclusive, non-blocking OS lock on ``directory/.lock`` for the ``with`` block.

    The lock is :func:`fcntl.flock` on an open file, so it dies with its holder: a killed process
    never leaves a stale lock. Where ``fcntl`` is missing (Windows) nothing is locked.

    Raises
    ------
    ValueError
        Another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ValueError(f"{directory!r} is in use by {what} (process {holder}); wait for it to finish "
                             "or use another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
