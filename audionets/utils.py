"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from audionets.errors import ConfigError, OutputError

if TYPE_CHECKING:
    import torch


def current_umask() -> int:
    """The process umask (reading it requires setting it, so set it straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def resolve_device(device: "str | torch.device", local_rank: int = 0,
                   key: str = "device") -> "torch.device":
    """``"auto"`` (CUDA if there is a GPU, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` -> a
    usable device; plain ``cuda`` is ``cuda:<local_rank>`` (the GPU of this DDP process).

    ConfigError naming ``key`` (the option or config key) for an unknown name or CUDA without
    a GPU.
    """
    import torch

    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):  # meta, mps, xpu: not run here
        raise ConfigError(f"{key}: unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {name!r} requested but no CUDA GPU is available; use cpu")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def read_text(path: str | os.PathLike, error: type[Exception], hint: str) -> str:
    """The UTF-8 text of ``path``; ``error("<path>: <problem>; <hint>")`` when it is missing,
    unreadable or not text (a binary file where a YAML file is expected)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problem = "not a UTF-8 text file"
    except OSError as err:
        problem = f"cannot read it ({err.strerror or err})"
    raise error(f"{path}: {problem}; {hint}")


def real_path(path: str | os.PathLike) -> Path:
    """``Path(path).resolve()``, or the absolute path when a symbolic link loop stops the
    resolution (Python raises RuntimeError there): for comparing paths, never failing."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(path).absolute()


def is_link_loop(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or a folder on the way to it) is a symbolic link loop."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Check, creating nothing, that ``out_dir`` is a writable folder or can be made one.

    For commands that would otherwise find a bad output path only after their work: raises
    :class:`OutputError` when ``out_dir`` or one of its parents is an existing file, or when
    the nearest existing folder is not writable.
    """
    folder = Path(out_dir)
    if is_link_loop(folder):
        raise OutputError(f"{folder}: symbolic link loop; fix the link or choose another folder")
    nearest = folder.absolute()
    while not nearest.exists():
        nearest = nearest.parent
    if not nearest.is_dir():
        where = "" if nearest == folder.absolute() else f" (its parent {nearest})"
        raise OutputError(f"{folder}: output folder{where} is an existing file; choose a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: {nearest} is not writable; choose another folder")
    return folder


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` (with parents) if needed and check it is a writable folder.

    Raises :class:`OutputError` when it is an existing file, cannot be created, or does not
    accept new files (checked by creating one, which also works for root and read-only
    mounts, where permission bits alone mislead).
    """
    folder = check_out_dir(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"{folder}: cannot create the output folder ({err.strerror}); choose another folder"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(
            f"{folder}: output folder is not writable ({err.strerror}); choose another folder"
        ) from None
    return folder


LOCK_NAME = ".lock"
_HELD_LOCKS: set[Path] = set()  # locks this process holds (a PID alone cannot tell)


def _lock_holder(lock: Path) -> tuple[int, str] | None:
    """``(pid, host)`` written in ``lock``; None when unreadable or garbled (a writer killed
    between creating and filling it)."""
    try:
        pid, host = lock.read_text(encoding="utf-8").split(maxsplit=1)
        return int(pid), host.strip()
    except (OSError, ValueError):
        return None


def _holder_alive(lock: Path, pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot be checked from here: assume it runs
    if pid == os.getpid():
        return lock.resolve() in _HELD_LOCKS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, key: str = "experiment_dir") -> Iterator[Path]:
    """Hold ``folder/.lock`` (``"PID HOST"``) for the block; the folder is created if needed.

    A second holder gets an :class:`OutputError` naming the running process (``key`` is the
    setting to change). A lock left by a process that is gone (killed) is taken over, with a
    log line saying so.
    """
    import logging

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None and _holder_alive(lock, *holder):
                raise OutputError(
                    f"{folder}: in use by another run (PID {holder[0]} on {holder[1]}); wait for "
                    f"it or set {key}= to another folder (if no run is there, delete {lock})"
                ) from None
            logging.getLogger("audionets").warning(
                "%s: taking over the lock of a run that is gone (%s)", folder,
                f"PID {holder[0]} on {holder[1]}" if holder else "empty lock file")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        break
    _HELD_LOCKS.add(lock.resolve())
    try:
        yield lock
    finally:
        _HELD_LOCKS.discard(lock.resolve())
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success fsync it and rename onto ``path``.

    If the body raises, the temporary file is removed and ``path`` is left as it was, so a
    reader never sees a half-written file::

        with atomic_write("model.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output folder is not writable; choose another folder")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix + ".tmp",
        dir=folder,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes 0600 (and writers may recreate the file): give it the usual permissions
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:  # a full disk, a file size limit, a vanished folder
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({err.strerror or err}); free disk space or "
                          "choose another folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _NoBar:
    """Progress shown nowhere."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _CallbackBar:
    """Calls ``report(done, total)`` after each update (a web page's progress, for example)."""

    def __init__(self, report: Callable[[int, int], None], total: int, done: int) -> None:
        self.report, self.total, self.done = report, total, done

    def update(self, n: int) -> None:
        self.done += n
        self.report(self.done, self.total)

    def close(self) -> None:
        pass


def progress_bar(total: int, name: str, enabled: bool | Callable[[int, int], None],
                 unit: str = "chunk", initial: int = 0, **tqdm_options: Any):
    """Progress with ``update``/``close``: a tqdm bar on stderr when ``enabled`` is True, calls
    of ``enabled(done, total)`` when it is a callable, nothing when it is False.

    ``initial`` counts work done before (a resumed job); ``tqdm_options`` go to the bar.
    """
    if callable(enabled):
        return _CallbackBar(enabled, total, initial)
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, **tqdm_options)
