"""Data files of real-data sources: what they are, where they live, whether they verify.

A source that reads files declares them on its record as a :class:`Dataset`
(``SourceRecord(..., data=Dataset(...))``): file names, sizes, SHA-256 checksums and the
URLs they come from. rdbench then

* lists them with their status (``rdbench data list``) and fetches them
  (``rdbench data download NAME``, see :mod:`rdbench.download`); nothing is ever
  downloaded silently;
* skips the source under ``--sources all`` while a file is missing or wrong, saying why,
  and refuses it with the same message when it is named explicitly;
* lets the source find a verified file with :meth:`Dataset.locate`, which raises a
  :class:`DataError` naming the file, the folder it belongs in and the command that
  fetches it.

The data directory is ``--data-dir``, else the environment variable ``RDBENCH_DATA_DIR``,
else ``$XDG_CACHE_HOME/rdbench`` (``~/.cache/rdbench``). A dataset's files live in
``DATA_DIR/<dataset name>/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ENV = "RDBENCH_DATA_DIR"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class DataError(RuntimeError):
    """A data file that is missing, wrong or malformed; the message says how to fix it."""


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/rdbench``, or ``~/.cache/rdbench``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "rdbench"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$RDBENCH_DATA_DIR``, else the default."""
    chosen = explicit if explicit is not None else os.environ.get(ENV) or default_data_dir()
    return Path(chosen).expanduser().absolute()


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DataFile:
    """One file: its name, size in bytes, SHA-256 (hex) and URLs to fetch it from, in order."""

    name: str
    size: int
    sha256: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class FileCheck:
    """The state of one file in a data directory: ``verified``, ``missing``, ``wrong size`` or
    ``checksum mismatch``; ``problem`` explains anything but ``verified``."""

    file: DataFile
    path: Path
    state: str
    problem: str | None = None


@dataclass(frozen=True)
class Dataset:
    """The files a real-data source reads.

    name: the folder under the data directory and the name ``rdbench data download`` takes.
    files: every file the source needs. homepage: where the dataset, its license and its
    citation are described.
    """

    name: str
    files: tuple[DataFile, ...]
    homepage: str = ""

    def validate(self) -> None:
        """Raise ValueError naming the first malformed field."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"dataset name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.files, tuple) or not self.files:
            raise ValueError(f"dataset {self.name!r}: files must be a non-empty tuple of DataFile")
        names = set()
        for f in self.files:
            if not isinstance(f, DataFile):
                raise ValueError(f"dataset {self.name!r}: expected DataFile, got {type(f).__name__}")
            if not f.name or f.name != Path(f.name).name or f.name.startswith(".") or f.name in names:
                raise ValueError(f"dataset {self.name!r}: file name {f.name!r} must be a unique plain file name")
            if not isinstance(f.size, int) or f.size <= 0:
                raise ValueError(f"dataset {self.name!r}: {f.name} size must be a positive number of bytes")
            if not isinstance(f.sha256, str) or not _SHA256.match(f.sha256):
                raise ValueError(f"dataset {self.name!r}: {f.name} sha256 must be 64 lowercase hex digits")
            if not isinstance(f.urls, tuple) or not f.urls or not all(isinstance(u, str) for u in f.urls):
                raise ValueError(f"dataset {self.name!r}: {f.name} urls must be a non-empty tuple of strings")
            names.add(f.name)

    def directory(self, root: str | os.PathLike[str] | None = None) -> Path:
        """Where this dataset's files belong: ``DATA_DIR/<name>``."""
        return data_dir(root) / self.name

    def download_command(self, root: str | os.PathLike[str] | None = None) -> str:
        """The command that fetches this dataset into ``root``'s data directory."""
        command = f"rdbench data download {self.name}"
        chosen = data_dir(root)
        if chosen != data_dir(default_data_dir()):
            command += f" --data-dir {shlex.quote(str(chosen))}"
        return command

    def check(self, root: str | os.PathLike[str] | None = None) -> list[FileCheck]:
        """The state of every file (sizes first, SHA-256 only of files of the right size)."""
        return [self._check(f, self.directory(root), root) for f in self.files]

    def problem(self, root: str | os.PathLike[str] | None = None) -> str | None:
        """Why this dataset cannot be used from ``root`` (the first bad file), or None."""
        return next((c.problem for c in self.check(root) if c.problem), None)

    def locate(self, name: str, root: str | os.PathLike[str] | None = None) -> Path:
        """The path of file ``name`` after checking its size and SHA-256.

        Raises DataError, naming the file, its folder and the download command, when the
        file is missing or is not the official one.
        """
        matches = [f for f in self.files if f.name == name]
        if not matches:
            raise KeyError(f"dataset {self.name!r} has no file {name!r}")
        result = self._check(matches[0], self.directory(root), root)
        if result.problem:
            raise DataError(result.problem)
        return result.path

    def _check(self, f: DataFile, folder: Path, root: str | os.PathLike[str] | None) -> FileCheck:
        path = folder / f.name
        fix = f"run `{self.download_command(root)}`"
        if not path.is_file():
            return FileCheck(
                f,
                path,
                "missing",
                (
                    f"data file {f.name} of {self.name!r} not found in {folder}; {fix}, or put the file there "
                    f"yourself (from {f.urls[0]}). The data directory is set by --data-dir or {ENV}"
                ),
            )
        size = path.stat().st_size
        if size != f.size:
            return FileCheck(
                f,
                path,
                "wrong size",
                (
                    f"data file {path} has {size} bytes, expected {f.size} (truncated, or not the official "
                    f"file); {fix} to replace it"
                ),
            )
        digest = sha256_of(path)
        if digest != f.sha256:
            return FileCheck(
                f,
                path,
                "checksum mismatch",
                (
                    f"data file {path} is corrupted or not the official file: its SHA-256 is {digest}, "
                    f"expected {f.sha256}; {fix} to replace it"
                ),
            )
        return FileCheck(f, path, "verified")


__all__ = ["ENV", "DataError", "DataFile", "Dataset", "FileCheck", "data_dir", "default_data_dir", "sha256_of"]
