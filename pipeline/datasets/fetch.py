"""Download dataset archives with checksums and resumable partial downloads (``mmer fetch``).

Only this module touches the network, and only when a user runs ``mmer fetch``:
``prepare`` never downloads. A download streams into ``<name>.part``; an interrupted
one resumes from the bytes already there (HTTP ``Range``), and the finished file is
checked against the record's size and MD5 before it is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

MERGE_RECORD = "https://zenodo.org/api/records/13939205"
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download failed or does not match its checksum."""


def record_files(record_url: str) -> dict[str, dict]:
    """``{file name: {"url", "size", "md5"}}`` of a Zenodo record (its API JSON; legacy and current formats)."""
    try:
        with urlopen(record_url, timeout=60) as response:
            record = json.load(response)
    except (URLError, OSError, ValueError) as exc:
        raise FetchError(f"{record_url}: cannot read the record ({exc})") from exc
    entries = record.get("files", [])
    if isinstance(entries, dict):  # current API: {"entries": {...}} on some endpoints
        entries = list(entries.get("entries", {}).values())
    files = {}
    for entry in entries:
        name = entry.get("key") or entry.get("filename")
        links = entry.get("links", {})
        url = links.get("content") or links.get("download") or links.get("self")
        checksum = str(entry.get("checksum", ""))
        files[name] = {
            "url": url,
            "size": entry.get("size", entry.get("filesize")),
            "md5": checksum.removeprefix("md5:") or None,
        }
    if not files:
        raise FetchError(f"{record_url}: the record lists no files")
    return files


def file_md5(path: str | Path) -> str:
    """MD5 of a file's bytes (hex)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | Path, md5: str | None = None, size: int | None = None) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part``; verify size and MD5; skip a verified ``dest``."""
    dest = Path(dest)
    if dest.exists() and (md5 is None or file_md5(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    if size is None or start < size:  # a complete .part (killed before its check) needs no request
        try:
            _stream(url, part, start, size, dest.name)
        except HTTPError as exc:
            if exc.code != 416:  # 416: nothing left to send; check what is there
                raise FetchError(f"{dest.name}: {url} answered {exc.code} {exc.reason}; rerun to retry") from exc
        except (URLError, OSError) as exc:
            raise FetchError(f"{dest.name}: download interrupted ({exc}); rerun `mmer fetch` to resume") from exc
    got = part.stat().st_size if part.exists() else 0
    if size is not None and got != size:
        raise FetchError(f"{dest.name}: got {got} bytes, expected {size}; rerun `mmer fetch` to resume")
    if md5 is not None and file_md5(part) != md5:
        part.unlink()
        raise FetchError(f"{dest.name}: MD5 mismatch (expected {md5}); the partial file was removed, rerun to retry")
    os.replace(part, dest)
    return dest


def _stream(url: str, part: Path, start: int, size: int | None, label: str) -> None:
    """Append ``url``'s bytes from ``start`` to ``part`` (from zero when the server ignores ``Range``)."""
    from tqdm import tqdm

    headers = {"Range": f"bytes={start}-"} if start else {}
    with urlopen(Request(url, headers=headers), timeout=60) as response:
        if start and getattr(response, "status", None) != 206:  # the server sent the whole file again
            start = 0
        with (
            open(part, "ab" if start else "wb") as out,
            tqdm(total=size, initial=start, unit="B", unit_scale=True, desc=label) as bar,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))


def fetch_archives(dest: str | Path, names: list[str], record_url: str, extract: bool = True) -> list[Path]:
    """Download the named archives of a record into ``dest`` and unpack the ``.zip`` ones there."""
    files = record_files(record_url)
    unknown = [n for n in names if n not in files]
    if unknown:
        raise FetchError(f"{record_url}: no file(s) {unknown}; the record has {sorted(files)}")
    paths = []
    for name in names:
        meta = files[name]
        path = download(meta["url"], Path(dest) / name, meta["md5"], meta["size"])
        if extract and path.suffix == ".zip":
            unpack(path, Path(dest), meta["md5"] or file_md5(path))
        paths.append(path)
    return paths


def unpack(archive: Path, dest: Path, md5: str) -> None:
    """Unzip into a temporary folder beside ``dest``, then move each top-level entry into place.

    A marker ``.<archive>.unpacked`` holding the archive's MD5 skips the work on reruns; an
    interrupted unpack leaves no half-written tree behind (zipfile drops ``..`` and
    absolute member paths).
    """
    marker = dest / f".{archive.name}.unpacked"
    if marker.exists() and marker.read_text().strip() == md5:
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.stem}.", dir=dest))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        for entry in staging.iterdir():
            target = dest / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(md5 + "\n")


def merge_archive(subset: str, variant: str) -> str:
    """The release archive of a MERGE subset and variant, e.g. ``MERGE_Bimodal_Balanced.zip``."""
    from pipeline.datasets.merge import SUBSETS, VARIANTS

    return f"MERGE_{SUBSETS[subset]}_{VARIANTS[variant]}.zip"
