"""Stage ``audio_features``: manifest -> features/audio.parquet (+ audio_errors.parquet)."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd

from pipeline.audio_io import load_audio
from pipeline.executor import check_error_budget, map_clips
from pipeline.features.audio import AudioFeatureConfig, extract_audio_features, feature_names
from pipeline.params import Params
from pipeline.stages import AUDIO_ERRORS, AUDIO_STORE, MANIFEST
from pipeline.store import ERRORS_SCHEMA, audio_schema, read_store, store_metadata, write_store

LIBRARIES = ("librosa", "soundfile", "soxr", "scipy")


def extract_file(path: str, config: AudioFeatureConfig) -> dict[str, float]:
    """Decode one file and describe it (the per-clip job the executor maps)."""
    return extract_audio_features(load_audio(path, config.sr), config)


def run(params: Params) -> None:
    """Extract every clip, record failures, enforce the error budget, write both stores."""
    manifest = read_store(MANIFEST, columns=["clip_id", "audio_path"])
    config = params.audio.feature_config()
    # Absolute paths: worker processes are reused and keep the working directory they started in.
    items = [(cid, (os.path.abspath(path), config)) for cid, path in zip(manifest["clip_id"], manifest["audio_path"])]
    records, failures = map_clips(extract_file, items, params.executor.n_jobs, stage="features", desc="audio features")

    paths = dict(zip(manifest["clip_id"], manifest["audio_path"]))
    errors = pd.DataFrame(
        [{"clip_id": f.clip_id, "path": paths[f.clip_id], **dataclasses.asdict(f)} for f in failures],
        columns=ERRORS_SCHEMA.names,
    )
    meta = store_metadata("audio", dataclasses.asdict(config), LIBRARIES, MANIFEST)
    write_store(errors, AUDIO_ERRORS, ERRORS_SCHEMA, {**meta, "store": "audio_errors"})
    check_error_budget(len(failures), len(items), params.audio.max_error_fraction, failures, "audio_features")

    names = feature_names(config)
    rows = pd.DataFrame([records[cid] for cid in manifest["clip_id"] if cid in records], columns=names)
    rows.insert(0, "clip_id", [cid for cid in manifest["clip_id"] if cid in records])
    write_store(rows, AUDIO_STORE, audio_schema(names), {**meta, "feature_names": names})
    print(f"audio_features: {len(rows)} clips x {len(names)} features, {len(failures)} failed -> {AUDIO_STORE}")
