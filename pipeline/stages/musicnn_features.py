"""Stage ``musicnn_features``: manifest -> features/musicnn.parquet (+ musicnn_errors.parquet)."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd
import torch

from pipeline import audio_io
from pipeline.executor import check_error_budget
from pipeline.features import musicnn, musicnn_net, tf_checkpoint
from pipeline.features.musicnn import SR, MusicnnConfig, extract_musicnn, musicnn_feature_names
from pipeline.features.musicnn_net import load_musicnn
from pipeline.params import Params
from pipeline.stages import MANIFEST, MUSICNN_ERRORS, MUSICNN_STORE
from pipeline.stages.clips import ClipStores, StoreSpec, analysis_window, make_cache, manifest_tasks, write_errors
from pipeline.store import musicnn_schema, store_metadata

LIBRARIES = ("torch", "librosa", "soundfile", "soxr")


def extract_file(path: str, config: MusicnnConfig, offset_s: float, window_s: float | None) -> dict[str, np.ndarray]:
    """Decode one file at 16 kHz and embed it (one torch thread, like every job; restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = audio_io.load_audio(path, SR, offset_s, window_s)
        return extract_musicnn(y, load_musicnn(config.model), config.batch_patches)
    finally:
        torch.set_num_threads(threads)


def tabulate(batch: list[tuple[str, dict]], names: list[str]) -> tuple[list[pd.DataFrame], dict]:
    """Rows of the musicnn store for a batch."""
    head = pd.DataFrame({"clip_id": [cid for cid, _ in batch], "n_patches": [int(r["n_patches"]) for _, r in batch]})
    matrix = np.stack([np.concatenate([r["pooled"], r["penultimate"], r["tags"]]) for _, r in batch])
    return [pd.concat([head, pd.DataFrame(matrix, columns=names)], axis=1)], {}


def run(params: Params) -> None:
    """Embed every clip (cached, streamed), or write empty stores when ``musicnn.enabled`` is false."""
    config = params.musicnn.feature_config()
    groups = musicnn_feature_names(config.model)
    names = [n for group in groups.values() for n in group]
    window, window_settings = analysis_window(params)
    settings = {
        **dataclasses.asdict(config),
        **window_settings,
        "sr": SR,
        "n_fft": musicnn.N_FFT,
        "hop_length": musicnn.HOP,
        "n_mels": musicnn.N_MELS,
        "patch_frames": musicnn.PATCH_FRAMES,
    }
    manifest, tasks = manifest_tasks((config, *window))
    if params.musicnn.enabled:  # fail early, once, on missing or corrupt weights (naming the fix)
        settings["weights_sha256"] = musicnn_net.weights_sha256(config.model)
        load_musicnn(config.model)
    else:
        tasks = []
    meta = store_metadata(
        "musicnn",
        settings,
        LIBRARIES,
        MANIFEST,
        feature_names=names,
        feature_groups={group: [cols[0], cols[-1], len(cols)] for group, cols in groups.items()},
        model=config.model,
        tags=list(musicnn.tag_names(config.model)),
        credit="musicnn (Pons & Serra 2019), weights (c) Music Technology Group, Universitat Pompeu Fabra, ISC licence",
    )
    modules = [musicnn, musicnn_net, tf_checkpoint, audio_io, sys.modules[__name__]]
    cache = make_cache(params, "musicnn", settings, modules, LIBRARIES)
    with ClipStores(params, [StoreSpec(MUSICNN_STORE, musicnn_schema(names), meta)]) as out:
        rows = functools.partial(tabulate, names=names)
        failures, n_cached = out.run(extract_file, tasks, rows, "musicnn", "musicnn", cache)
        write_errors(failures, manifest, MUSICNN_ERRORS, {**meta, "store": "musicnn_errors"})
        check_error_budget(len(failures), len(tasks), params.musicnn.max_error_fraction, failures, "musicnn_features")
    state = "" if params.musicnn.enabled else " (musicnn.enabled is false: empty store)"
    print(
        f"musicnn_features: {out.rows} clips x {len(names)} ({config.model}: pooled 1506, penultimate 200, "
        f"tags 50); {len(tasks) - len(failures) - n_cached} computed, {n_cached} from cache, "
        f"{len(failures)} failed{state} -> {MUSICNN_STORE}"
    )
