"""``rdbench data download``: fetch a dataset's files, verified, placed atomically.

Each file is streamed over HTTP(S) to ``DATA_DIR/<dataset>/.<file>.part`` while its
SHA-256 is computed; only a file of the declared size and checksum is moved into place
(``os.replace``, atomic on one file system). A failed, interrupted or mismatched download
leaves nothing behind (the partial file is deleted, and a leftover one from a killed
process is overwritten, never resumed). The URLs of a file are tried in order.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

import rdbench
from rdbench.data import DataError, DataFile, Dataset

_CHUNK = 1 << 20


def download(
    dataset: Dataset,
    root: str | os.PathLike[str] | None = None,
    *,
    url_base: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Fetch every file of ``dataset`` that is not already present and verified.

    url_base: fetch ``<url_base>/<file name>`` instead of the declared URLs (a mirror, or a
    test server). timeout: seconds a connection or a read may stall. log: receives one line
    per file. Returns the verified paths; raises DataError listing every URL's failure
    when a file cannot be fetched.
    """
    paths = []
    for check in dataset.check(root):
        if check.state == "verified":
            log(f"{dataset.name}: {check.file.name} is already present and verified")
        else:
            urls = (f"{url_base.rstrip('/')}/{check.file.name}",) if url_base else check.file.urls
            _fetch_any(check.file, urls, check.path, progress=progress, timeout=timeout, log=log)
            log(f"{dataset.name}: {check.file.name} downloaded and verified ({check.file.size} bytes)")
        paths.append(check.path)
    return paths


def _fetch_any(
    file: DataFile, urls: tuple[str, ...], target: Path, *, progress: bool, timeout: float, log: Callable[[str], None]
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _fetch(file, url, target, progress=progress, timeout=timeout)
            return
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = f"{type(exc).__name__}: {exc}"
            failures.append(f"  {url}: {reason}")
            if len(urls) > 1:
                log(f"{file.name}: {url} failed ({reason})")
    raise DataError(f"could not fetch {file.name} into {target.parent}:\n" + "\n".join(failures))


def _fetch(file: DataFile, url: str, target: Path, *, progress: bool, timeout: float) -> None:
    """Download ``url`` to ``target`` through a partial file; raise ValueError if it is wrong."""
    part = target.with_name(f".{target.name}.part")
    request = urllib.request.Request(url, headers={"User-Agent": f"rdbench/{rdbench.__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) != file.size:
                raise ValueError(f"the server announces {announced} bytes, expected {file.size}")
            digest, received = hashlib.sha256(), 0
            with tqdm(
                total=file.size, desc=file.name, unit="B", unit_scale=True, disable=not progress, file=sys.stderr
            ) as bar:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > file.size:
                        raise ValueError(f"the server sent more than the expected {file.size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            if received != file.size:
                raise ValueError(f"received {received} bytes, expected {file.size}")
            if digest.hexdigest() != file.sha256:
                raise ValueError(f"SHA-256 {digest.hexdigest()} does not match the expected {file.sha256}")
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)
    except BaseException:  # an error, a mismatch or Ctrl-C: leave nothing half-written
        part.unlink(missing_ok=True)
        raise


__all__ = ["download"]
