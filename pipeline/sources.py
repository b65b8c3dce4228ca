"""Where audio comes from: local paths, or fsspec URLs (``s3://bucket/a.mp3``, ``gs://``, ``file://``).

A manifest's ``audio_path`` may be a URL with a scheme that an installed fsspec
filesystem handles (``pip install s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``);
decoding, the cache key (the file's bytes) and the changed-meanwhile check read it
through fsspec, so Dask workers on other machines read the same objects. Local paths
take the plain, faster route.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(path: str | Path) -> bool:
    """True for ``scheme://...`` (fsspec), False for a local path."""
    return isinstance(path, str) and bool(_URL.match(path))


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with dask
        raise RuntimeError(f"{url}: reading URLs needs fsspec: pip install fsspec") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise RuntimeError(
            f"{url}: no fsspec filesystem for {scheme}:// ({exc}); install its package (s3fs for s3://, gcsfs for gs://)"
        ) from exc


def open_source(path: str | Path) -> BinaryIO:
    """The file's bytes, opened for reading (seekable)."""
    if not is_url(path):
        return open(path, "rb")
    fs, inner = _filesystem(str(path))
    return fs.open(inner, "rb")


def source_state(path: str | Path) -> tuple:
    """What changes when the file is rewritten: size and modification time; for a URL its
    filesystem's ``ukey`` (the ETag on S3, a hash of the object's info elsewhere)."""
    if not is_url(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    fs, inner = _filesystem(str(path))
    return (fs.ukey(inner),)


def sources_exist(paths: list[str]) -> list[bool]:
    """:func:`source_exists` for many paths; URLs are checked 16 at a time (one round trip each)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(source_exists, paths))


def source_exists(path: str | Path) -> bool:
    """Whether the path names an existing file (a URL: an existing object)."""
    if not is_url(path):
        return os.path.isfile(path)
    fs, inner = _filesystem(str(path))
    return fs.isfile(inner)
