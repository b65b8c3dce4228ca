"""Folder-per-class corpora as an mmer manifest.

``dataset.root/<label>/<name>.<audio ext>``, optionally with a sidecar text
``<name>.txt`` or ``<name>.lrc`` beside it. A corpus without any audio file is a
text-only corpus (one clip per text file); in a corpus with audio, a text file without
an audio file of the same name is an error (every clip needs audio there).
``dataset.group_regex`` takes the group (speaker, artist) from the file name: the
first capture group of a match, or the whole match.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipeline.datasets.manifest import ManifestError, read_text_file

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff")
TEXT_EXTENSIONS = (".txt", ".lrc")


def read_folders(root: str | Path, group_regex: str | None = None) -> pd.DataFrame:
    """One row per audio (or stand-alone text) file under ``root/<label>/``: clip_id ``<label>/<name>``."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(
            f"{root}: folder not found; set dataset.root to the folder holding one sub-folder per label"
        )
    pattern = re.compile(group_regex) if group_regex else None
    rows = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in label_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        audio: dict[str, Path] = {}
        for p in files:
            if p.suffix.lower() in AUDIO_EXTENSIONS:
                if p.stem in audio:
                    raise ManifestError(f"{p} and {audio[p.stem].name}: two audio files of one clip; keep one")
                audio[p.stem] = p
        texts: dict[str, Path] = {}
        for p in files:
            if p.suffix.lower() in TEXT_EXTENSIONS:
                texts.setdefault(p.stem, p)  # name.txt before name.lrc
        for stem in sorted(set(audio) | set(texts)):
            name = (audio.get(stem) or texts[stem]).name
            rows.append(
                {
                    "clip_id": f"{label_dir.name}/{stem}",
                    "audio_path": str(audio[stem]) if stem in audio else None,
                    "text": read_text_file(texts[stem]) if stem in texts else None,
                    "label": label_dir.name,
                    "group": _group(pattern, name) if pattern else None,
                }
            )
    orphans = [r["clip_id"] for r in rows if r["audio_path"] is None]
    if orphans and len(orphans) < len(rows):
        raise ManifestError(
            f"{root}/{orphans[0]}: a text file without an audio file of the same name ({len(orphans)} such); "
            "in a corpus with audio every clip needs audio: rename or remove them"
        )
    if not rows:
        raise ManifestError(
            f"{root}: no clips found; expected {root}/<label>/<name>{{{','.join(AUDIO_EXTENSIONS)}}} "
            f"(and/or <name>.txt / .lrc)"
        )
    return pd.DataFrame(rows)


def _group(pattern: re.Pattern, name: str) -> str:
    match = pattern.search(name)
    if match is None:
        raise ManifestError(f"dataset.group_regex {pattern.pattern!r} does not match the file name {name!r}")
    return match.group(1) if pattern.groups else match.group(0)
