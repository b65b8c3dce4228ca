"""Stages ``encoders`` (resolve every configured encoder -> models/enc/encoders.json) and
``encoder_features@<name>`` (manifest -> features/enc_<name>.parquet + enc_<name>_errors.parquet)."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd

from pipeline import audio_io
from pipeline.executor import check_error_budget
from pipeline.features import encoders
from pipeline.features.encoders import EncoderConfig, embed_clip, load_encoder, resolve_model, weights_sha256
from pipeline.params import Params
from pipeline.stages import ENCODERS_INDEX, MANIFEST, encoder_errors, encoder_store
from pipeline.stages.clips import ClipStores, StoreSpec, analysis_window, make_cache, manifest_tasks, write_errors
from pipeline.store import encoder_schema, store_metadata, write_json

LIBRARIES = ("torch", "transformers", "librosa", "soundfile", "soxr")


def resolve_all(params: Params) -> dict:
    """What each configured encoder resolves to: folder, revision, kind and weights sha256 (no model is loaded)."""
    resolved = {}
    for name, config in params.encoders.items():
        folder, revision = resolve_model(config.model)
        resolved[name] = {
            "model": config.model,
            "folder": str(folder),
            "revision": revision,
            "kind": encoders.model_kind(folder, config.kind),
            "weights_sha256": weights_sha256(folder),
        }
    return resolved


def run_index(params: Params) -> None:
    """models/enc/encoders.json: fails early, naming the fix, on a model that is not here; its content
    changes when an encoder's weights do, which reruns that encoder's feature stage."""
    resolved = resolve_all(params)
    write_json({name: {k: v for k, v in r.items() if k != "folder"} for name, r in resolved.items()}, ENCODERS_INDEX)
    for name, r in resolved.items():
        print(f"encoders: {name}: {r['kind']} {r['model']} (weights sha256 {r['weights_sha256'][:12]}…)")
    print(f"encoders: {len(resolved)} encoder(s) -> {ENCODERS_INDEX}")


def check_train_layers(name: str, config: EncoderConfig, probe: dict) -> None:
    """Fail before any clip is embedded when ``train_layers`` cannot be read from what the store will hold."""
    widths = {key.split("_")[0]: len(value) for key, value in probe.items() if key.startswith("L")}
    where = f"encoders.{name}.train_layers"
    if config.train_layers == "avg" and len(set(widths.values())) > 1:
        raise ValueError(
            f"{where}: avg needs layers of equal width, and this model's differ ({widths}); set it to all or L<k>"
        )
    k = encoders.layer_index(config.train_layers)
    if k is not None and f"L{k:02d}" not in widths:
        raise ValueError(f"{where}: L{k} is not among the stored layers {sorted(widths)}; add it to layers")


def extract_file(
    path: str, config: EncoderConfig, offset_s: float, window_s: float | None, threads: int
) -> dict[str, np.ndarray]:
    """Decode one file at the encoder's rate and embed it (``threads`` torch threads; restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        encoder = load_encoder(config)
        return embed_clip(audio_io.load_audio(path, encoder.sr, offset_s, window_s), encoder)
    finally:
        torch.set_num_threads(before)


def tabulate(batch: list[tuple[str, dict]], names: list[str]) -> tuple[list[pd.DataFrame], dict]:
    """Rows of an encoder store for a batch."""
    head = pd.DataFrame({"clip_id": [cid for cid, _ in batch], "n_windows": [int(r["n_windows"]) for _, r in batch]})
    matrix = np.stack([encoders.record_row(r) for _, r in batch]) if batch else np.zeros((0, len(names)))
    return [pd.concat([head, pd.DataFrame(matrix, columns=names)], axis=1)], {}


def run(params: Params, name: str) -> None:
    """Embed every clip with encoder ``name`` (cached by settings and weights sha256, streamed)."""
    if name not in params.encoders:
        raise ValueError(f"encoder {name!r} is not in params.yaml encoders (defined: {sorted(params.encoders)})")
    config = params.encoders[name]
    folder, revision = resolve_model(config.model)
    encoder = load_encoder(config)  # fails early, once, on a model that cannot be loaded
    probe = embed_clip(np.zeros(min(encoder.window, encoder.sr), dtype=np.float32), encoder)
    names = encoders.feature_names(probe)
    check_train_layers(name, config, probe)
    window, window_settings = analysis_window(params)
    settings = {
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("prompts", "max_error_fraction")},
        **window_settings,
        "sr": encoder.sr,
        "layers": list(encoder.layers),
        "kind": encoder.kind,
        "weights_sha256": weights_sha256(folder),
    }
    extra = {}
    if config.prompts:
        extra = dict(
            prompts=config.prompts,
            prompt_embeddings=encoders.prompt_embeddings(encoder, config.prompts, folder),
            logit_scale=encoders.logit_scale(encoder),
        )
    meta = store_metadata(
        f"enc_{name}",
        settings,
        LIBRARIES,
        MANIFEST,
        feature_names=names,
        encoder=name,
        model=config.model,
        revision=revision,
        widths={key: len(value) for key, value in probe.items() if key != "n_windows"},
        **extra,
    )
    threads = encoders.n_threads_env()
    manifest, tasks = manifest_tasks((config, *window, threads))
    modules = [encoders, audio_io, sys.modules[__name__]]
    cache = make_cache(params, f"enc_{name}", settings, modules, LIBRARIES)
    store, errors = encoder_store(name), encoder_errors(name)
    with ClipStores(params, [StoreSpec(store, encoder_schema(names), meta)]) as out:
        rows = functools.partial(tabulate, names=names)
        failures, n_cached = out.run(extract_file, tasks, rows, f"encoder_features@{name}", name, cache)
        write_errors(failures, manifest, errors, {**meta, "store": f"enc_{name}_errors"})
        check_error_budget(len(failures), len(tasks), config.max_error_fraction, failures, f"encoder_features@{name}")
    print(
        f"encoder_features@{name}: {out.rows} clips x {len(names)} ({encoder.kind}, layers {list(encoder.layers)}); "
        f"{len(tasks) - len(failures) - n_cached} computed, {n_cached} from cache, {len(failures)} failed -> {store}"
    )
