"""Fetching a data set's files: a checked download (md5) with a progress bar, and a safe tar
extraction (no path escapes, links or devices). data.py knows which files a data set has."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cnnprof.errors import UserError

# Seconds to wait for a mirror to answer: an offline machine fails fast, a slow link still works.
_TIMEOUT_S = 30.0


def fetch(url: str, dest: Path, md5: str, progress: bool) -> None:
    """Download `url` to `dest` through a temporary name, so `dest` exists only when verified."""
    partial = dest.with_name(f".{dest.name}.part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with (
            urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response,
            partial.open("wb") as out,
            _download_bar(progress) as bar,
        ):
            length = response.headers.get("Content-Length")
            task = bar.add_task(dest.name, total=int(length) if length else None)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.advance(task, len(chunk))
        if digest.hexdigest() != md5:
            raise UserError(
                f"{url} failed its checksum (md5 {digest.hexdigest()}, expected {md5}); "
                "the mirror or the connection corrupted it, try again later"
            )
        os.replace(partial, dest)
    except (OSError, http.client.HTTPException) as exc:
        raise UserError(f"could not download {url}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _download_bar(enabled: bool) -> Progress:
    # stderr, so a command whose stdout is piped (--json) keeps it clean.
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def extract_tar(archive: Path, target: Path) -> None:
    """Unpack `archive` into `target`, refusing it whole if any member could land outside.

    Only regular files and folders are accepted: the published archives hold nothing else, and a
    link is refused rather than resolved because a link to a link can leave `target` even when
    each one looks harmless on its own. Each file is written under a temporary name and renamed.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:  # check them all before writing anything
                path = PurePosixPath(member.name)
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"refusing {archive}: {member.name!r} is a link or a special file")
                if path.is_absolute() or ".." in path.parts or member.name.startswith("\\"):
                    raise UserError(f"refusing {archive}: {member.name!r} points outside {target}")
            for member in members:
                dest = target.joinpath(*PurePosixPath(member.name).parts)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                partial = dest.with_name(f".{dest.name}.part")
                try:
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has content
                    with source, partial.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    os.replace(partial, dest)
                finally:
                    partial.unlink(missing_ok=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:  # a bad gzip stream is an OSError
        raise UserError(f"could not unpack {archive}: {exc}; delete it and run again") from exc
