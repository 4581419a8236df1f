"""Output path planning for the inference commands.

Writing separated sources next to someone's recordings must never destroy anything:

* an output that already exists is refused unless ``overwrite=True``;
* an output that is the input itself (or another input of the same call) is always refused;
* every output is written to a hidden temporary file in the output folder and renamed onto
  its final name only once *all* outputs of that input are complete, so an error half-way
  (bad samples found late, a full disk, Ctrl-C) leaves neither partial files nor temporaries.

:func:`plan_outputs` checks a plan before any work starts; :class:`OutputSet` owns the
temporary files while they are written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from audionets.errors import OutputError
from audionets.utils import current_umask, real_path


def separation_names(stem: str, num_sources: int, num_channels: int | None = None) -> list[str]:
    """File names of the separated sources of an input called ``stem``.

    ``<stem>_s1.wav ... <stem>_s{S}.wav``; with ``num_channels`` (one separation per input
    channel) ``<stem>_ch1_s1.wav ... <stem>_ch{C}_s{S}.wav``, channel-major. Both counts
    start at 1.
    """
    if num_channels is None:
        return [f"{stem}_s{k + 1}.wav" for k in range(num_sources)]
    return [
        f"{stem}_ch{c + 1}_s{k + 1}.wav" for c in range(num_channels) for k in range(num_sources)
    ]


def _same_file(a: Path, b: Path) -> bool:
    if real_path(a) == real_path(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def plan_outputs(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    names: list[str],
    overwrite: bool = False,
    protected: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Check and return the output paths ``out_dir/name`` for ``input_path``.

    Raises :class:`OutputError` (naming the output) if two names collide, an output is the
    input or one of ``protected`` (the other inputs of the same call), or an output exists and
    ``overwrite`` is False. ``out_dir`` must already be prepared with
    :func:`audionets.utils.prepare_out_dir`.
    """
    source = Path(input_path)
    keep = [source, *(Path(p) for p in protected)]
    targets = [Path(out_dir) / name for name in names]
    if len({real_path(t) for t in targets}) != len(targets):
        raise OutputError(f"{source}: output names collide: {', '.join(names)}")
    for target in targets:
        if any(_same_file(target, p) for p in keep):
            raise OutputError(
                f"{target}: output would overwrite an input file; choose another --out-dir"
            )
        if target.is_dir():
            raise OutputError(f"{target}: output path is an existing folder; remove it first")
        if target.exists() and not overwrite:
            raise OutputError(f"{target}: output exists; pass --overwrite (in Python: "
                              "overwrite=True) to replace it")
    return targets


def check_distinct_inputs(
    files: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> None:
    """Refuse a call whose inputs would write outputs of the same names into one folder.

    Outputs are named after the input's stem in ``out_dir`` (default: the input's folder), so
    ``a/mix.wav b/mix.wav --out-dir out`` or ``take.wav take.flac`` would overwrite each other's
    results. Raises :class:`OutputError` naming both inputs (or the file given twice).
    """
    seen: dict[tuple[Path, str], Path] = {}
    for file in files:
        path = Path(file)
        folder = Path(out_dir) if out_dir is not None else path.parent
        key = (real_path(folder), path.stem)
        first = seen.setdefault(key, path)
        if first is path:
            continue
        if _same_file(first, path):
            raise OutputError(f"{path}: given twice; pass each file once")
        raise OutputError(
            f"{first} and {path}: both would write {path.stem}_s1.wav, ... into {folder}; "
            "rename one or separate them in two calls with different --out-dir folders"
        )


class OutputSet:
    """Temporary files for a group of outputs, renamed onto their targets all together.

    Use as a context manager: :meth:`temp` gives the temporary path of each target (a hidden
    file in the target's folder, so the final rename stays on one filesystem). When the block
    ends normally every temporary is fsynced and renamed onto its target; when it raises, all
    temporaries are deleted and the targets are left untouched::

        with OutputSet(targets) as outs:
            write(outs.temp(0)); write(outs.temp(1))
    """

    def __init__(self, targets: list[Path]) -> None:
        self.targets = list(targets)
        self._temps: list[Path] = []

    def __enter__(self) -> "OutputSet":
        try:
            for target in self.targets:
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".partial", dir=target.parent
                )
                os.close(fd)
                self._temps.append(Path(name))
        except OSError as err:
            self._cleanup()
            raise OutputError(
                f"{self.targets[0].parent}: cannot write outputs there ({err.strerror}); "
                "choose another folder"
            ) from None
        return self

    def temp(self, index: int) -> Path:
        """Temporary path standing for ``targets[index]``."""
        return self._temps[index]

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._cleanup()
            return
        try:
            mode = 0o666 & ~current_umask()  # not mkstemp's 0600
            for tmp in self._temps:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.chmod(tmp, mode)
            for tmp, target in zip(self._temps, self.targets):
                os.replace(tmp, target)
        except OSError as err:
            self._cleanup()
            raise OutputError(
                f"{self.targets[0]}: could not finish writing the outputs ({err.strerror})"
            ) from None
        folders = {t.parent for t in self.targets}
        for folder in folders:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _cleanup(self) -> None:
        for tmp in self._temps:
            tmp.unlink(missing_ok=True)
