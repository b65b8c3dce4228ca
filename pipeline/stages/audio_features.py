"""Stage ``audio_features``: manifest -> features/audio.parquet, melspec.parquet, audio_errors.parquet."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd

from pipeline import audio_io
from pipeline.executor import check_error_budget
from pipeline.features import audio as audio_features
from pipeline.features.audio import AudioFeatureConfig, extract_clip, feature_names
from pipeline.params import Params
from pipeline.stages import AUDIO_ERRORS, AUDIO_STORE, MANIFEST, MELSPEC_STORE
from pipeline.stages.clips import ClipStores, StoreSpec, make_cache, manifest_tasks, write_errors
from pipeline.store import audio_schema, melspec_schema, store_metadata

LIBRARIES = ("librosa", "soundfile", "soxr", "scipy")


def extract_file(path: str, config: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """Decode one file's analysis window and describe it (the job the executor maps).

    ``source_s`` rides along so the stage can record crops: the file's length in
    seconds when it was cut at the ``max_duration_s`` cap, else 0.
    """
    y, cut_s = audio_io.read_audio(path, config.sr, config.offset_s, config.window_s)
    capped = cut_s is not None and config.duration_s is None
    return {**extract_clip(y, config), "source_s": np.float64(cut_s if capped else 0.0)}


def cropped_clips(batch: list[tuple[str, dict]]) -> dict[str, float]:
    """``{clip_id: file length in s}`` for files cut at ``max_duration_s`` after ``offset_s``."""
    return {cid: round(float(r["source_s"]), 3) for cid, r in batch if r["source_s"] > 0}


def tabulate(batch: list[tuple[str, dict]], names: list[str]) -> tuple[list[pd.DataFrame], dict[str, float]]:
    """Rows of the descriptor and log-mel stores for a batch, and its cropped clips."""
    ids = [cid for cid, _ in batch]
    matrix = np.stack([r["descriptors"] for _, r in batch])
    descriptors = pd.concat([pd.DataFrame({"clip_id": ids}), pd.DataFrame(matrix, columns=names)], axis=1)
    mels = pd.DataFrame(
        {
            "clip_id": ids,
            "n_valid_frames": [int(r["n_valid_frames"]) for _, r in batch],
            "melspec": [r["melspec"] for _, r in batch],
        }
    )
    return [descriptors, mels], cropped_clips(batch)


def run(params: Params) -> None:
    """Extract every clip (cached), stream both stores, record failures, enforce the error budget."""
    config = params.audio.feature_config()
    manifest, tasks = manifest_tasks((config,))
    stage_module = sys.modules[__name__]
    cache = make_cache(params, "audio", dataclasses.asdict(config), [audio_features, audio_io, stage_module], LIBRARIES)
    names = feature_names(config)
    meta = store_metadata("audio", dataclasses.asdict(config), LIBRARIES, MANIFEST)
    stores = [
        StoreSpec(AUDIO_STORE, audio_schema(names), {**meta, "feature_names": names}),
        StoreSpec(
            MELSPEC_STORE,
            melspec_schema(config.melspec_n_mels, config.melspec_frames),
            {**meta, "store": "melspec", "layout": "(n_mels, n_frames)"},
        ),
    ]
    audio_features.compile_jit_kernels(config)  # before the workers start: numba's cache is not safe to race
    with ClipStores(params, stores) as out:
        rows = functools.partial(tabulate, names=names)
        failures, n_cached = out.run(extract_file, tasks, rows, "features", "audio features", cache)
        cropped = out.summary
        write_errors(failures, manifest, AUDIO_ERRORS, {**meta, "store": "audio_errors", "cropped_clips": cropped})
        if cropped:
            print(
                f"audio_features: warning: {len(cropped)} file(s) go on past audio.offset_s + max_duration_s "
                f"({config.offset_s} + {config.max_duration_s} s) and were analysed over that window only, "
                f"e.g. {next(iter(cropped))}; listed in {AUDIO_ERRORS}'s metadata (cropped_clips)"
            )
        check_error_budget(len(failures), len(tasks), params.audio.max_error_fraction, failures, "audio_features")
    print(
        f"audio_features: {out.rows} clips x {len(names)} descriptors + log-mel "
        f"{config.melspec_n_mels}x{config.melspec_frames}; {len(tasks) - len(failures) - n_cached} computed, "
        f"{n_cached} from cache, {len(failures)} failed -> {AUDIO_STORE}, {MELSPEC_STORE}"
    )
