"""Stage ``essentia_features``: manifest -> features/essentia.parquet (+ essentia_errors.parquet)."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd

from pipeline import audio_io
from pipeline.executor import check_error_budget
from pipeline.features import music
from pipeline.features.music import MusicFeatureConfig, extract_music_features, music_feature_names
from pipeline.params import Params
from pipeline.stages import ESSENTIA_ERRORS, ESSENTIA_STORE, MANIFEST
from pipeline.stages.clips import ClipStores, StoreSpec, analysis_window, make_cache, manifest_tasks, write_errors
from pipeline.store import music_schema, store_metadata

LIBRARIES = ("essentia", "soundfile", "soxr")


def extract_file(path: str, config: MusicFeatureConfig, offset_s: float, duration_s: float | None) -> dict:
    """Decode one file at essentia's rate and describe it; arrays out (cacheable)."""
    record = extract_music_features(audio_io.load_audio(path, config.sr, offset_s, duration_s), config)
    names = music_feature_names()
    return {
        "values": np.array([record[n] for n in names], dtype=np.float32),
        "key": np.array(record["key"]),
        "scale": np.array(record["scale"]),
    }


def tabulate(batch: list[tuple[str, dict]], names: list[str]) -> tuple[list[pd.DataFrame], dict]:
    """Rows of the essentia store for a batch."""
    head = pd.DataFrame(
        {
            "clip_id": [cid for cid, _ in batch],
            "key": [str(r["key"]) for _, r in batch],
            "scale": [str(r["scale"]) for _, r in batch],
        }
    )
    values = pd.DataFrame(np.stack([r["values"] for _, r in batch]), columns=names)
    return [pd.concat([head, values], axis=1)], {}


def run(params: Params) -> None:
    """Describe every clip with essentia (cached, streamed), or write empty stores when disabled."""
    config = params.essentia.feature_config()
    names = music_feature_names()
    window, window_settings = analysis_window(params)
    settings = {**dataclasses.asdict(config), **window_settings}
    meta = store_metadata("essentia", settings, LIBRARIES, MANIFEST, feature_names=names)
    manifest, tasks = manifest_tasks((config, *window))
    if not config.enabled:
        tasks = []
    cache = make_cache(params, "essentia", settings, [music, audio_io, sys.modules[__name__]], LIBRARIES)
    with ClipStores(params, [StoreSpec(ESSENTIA_STORE, music_schema(names), meta)]) as out:
        rows = functools.partial(tabulate, names=names)
        failures, _ = out.run(extract_file, tasks, rows, "essentia", "essentia", cache)
        write_errors(failures, manifest, ESSENTIA_ERRORS, {**meta, "store": "essentia_errors"})
        check_error_budget(len(failures), len(tasks), params.essentia.max_error_fraction, failures, "essentia_features")
    state = "" if config.enabled else " (essentia.enabled is false: empty store)"
    print(f"essentia_features: {out.rows} clips x {len(names)} descriptors, {len(failures)} failed{state}")
