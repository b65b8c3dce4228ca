"""``mmer predict``: a bundle's model on new clips, with the bundle's own feature extraction.

The inputs (audio files, folders, or a manifest) become a manifest in a scratch project;
the feature stages run there exactly as in the pipeline — same code, same executor,
same per-clip cache and error capture — with the feature configuration recorded in
``bundle.json``, not the current params.yaml. A clip that cannot be read gets a row with
its ``error``; it never stops the run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.bundle import read_bundle
from pipeline.datasets.folders import AUDIO_EXTENSIONS, TEXT_EXTENSIONS
from pipeline.datasets.manifest import read_text_file
from pipeline.sources import is_url

MANIFEST_SUFFIXES = (".csv", ".parquet")
OUTPUT_SUFFIXES = (".parquet", ".csv", ".jsonl")


def collect_inputs(
    inputs: list[str | Path], columns: dict[str, str] | None = None, keep: list[str] = ()
) -> pd.DataFrame:
    """One row per clip: ``clip_id, audio_path, text, label`` (label None unless a manifest gives it), plus the
    manifest columns named in ``keep`` (a regression bundle's targets; None where absent).

    An audio file's text is a sidecar ``<name>.txt`` or ``<name>.lrc`` beside it; a folder
    is searched recursively for audio files (clip_id: the path inside the folder, without
    extension); a ``.csv``/``.parquet`` file is a manifest read with ``columns`` (the
    ``dataset.columns`` mapping; ``label`` optional).
    """
    frames = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise FileNotFoundError(f"{item}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            frames.append(_audio_rows(files, item))
        elif item.suffix.lower() in MANIFEST_SUFFIXES:
            frames.append(_manifest_rows(item, columns or {}, list(keep)))
        elif item.exists() or item.suffix.lower() in AUDIO_EXTENSIONS:
            frames.append(_audio_rows([item], item.parent))  # a missing or unreadable file becomes an error row
        else:
            raise FileNotFoundError(f"{item}: not found (give audio files, folders or a .csv/.parquet manifest)")
    table = (
        pd.concat(frames, ignore_index=True)
        .reindex(columns=["clip_id", "audio_path", "text", "label", *keep])
        .astype(object)
    )
    table = table.where(table.notna() & (table != ""), None)  # one spelling of "none": None
    table["audio_path"] = [  # absolute: the features are extracted in a scratch folder
        os.path.abspath(p) if p is not None and not is_url(p) else p for p in table["audio_path"]
    ]
    repeated = table["clip_id"][table["clip_id"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"two inputs have the clip id {repeated[0]!r}; pass them in separate runs or rename one")
    return table


def _audio_rows(files: list[Path], root: Path) -> pd.DataFrame:
    rows = []
    for path in files:
        sidecar = next((t for t in (path.with_suffix(ext) for ext in TEXT_EXTENSIONS) if t.exists()), None)
        rows.append(
            {
                "clip_id": path.relative_to(root).with_suffix("").as_posix(),
                "audio_path": str(path.resolve()),
                "text": read_text_file(sidecar) if sidecar else None,
                "label": None,
            }
        )
    return pd.DataFrame(rows)


def _manifest_rows(path: Path, columns: dict[str, str], keep: list[str] = ()) -> pd.DataFrame:
    """A manifest's clips through the manifest adapter; without a label column, labels are None."""
    from pipeline.datasets.manifest import read_manifest_file

    parquet = path.suffix.lower() == ".parquet"
    raw = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=False)
    label = columns.get("label", "label")
    if label in raw.columns:
        table = read_manifest_file(path, columns)
    else:  # predict only: the adapter needs a label column, so a copy gets an empty one
        for key in ("audio_path", "text_path"):
            name = columns.get(key, key)
            if name in raw.columns:  # absolute, so that the copy elsewhere finds the files
                folder = path.resolve().parent
                raw[name] = [str(folder / v) if isinstance(v, str) and v and not is_url(v) else v for v in raw[name]]
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "manifest.parquet"
            raw.assign(**{label: ""}).to_parquet(copy)
            table = read_manifest_file(copy, columns).assign(label=None)
    table = table.reindex(columns=["clip_id", "audio_path", "text", "label", *keep])
    return table.replace({"label": {"": None}, "text": {"": None}})


@contextlib.contextmanager
def working_directory(folder: Path):
    """Run the block with ``folder`` as the working directory (the stages' relative paths land there)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)


def feature_params(bundle: dict, jobs: int, dask_address: str | None, cache_dir: Path | None):
    """Params whose feature sections are the bundle's recorded configuration (failures recorded, never fatal)."""
    from dataclasses import fields

    from pipeline.params import AudioParams, EssentiaParams, MusicnnParams, Params, TextParams, build

    def known(cls: type, recorded: dict | None) -> dict:  # the keys the params section has (not derived ones)
        names = {f.name for f in fields(cls)}
        return {k: v for k, v in (recorded or {}).items() if k in names}

    features = bundle["features"]
    audio = (features.get("descriptors") or features.get("melspec") or {}).get("params")
    musicnn = next((f["params"] for name, f in features.items() if name.startswith("musicnn")), None)
    essentia = features.get("essentia", {}).get("params")
    text = features.get("text", {})
    data = {
        "audio": {**known(AudioParams, audio), "max_error_fraction": 1.0},
        "essentia": {**known(EssentiaParams, essentia), "enabled": essentia is not None, "max_error_fraction": 1.0},
        "musicnn": {**known(MusicnnParams, musicnn), "enabled": musicnn is not None, "max_error_fraction": 1.0},
        "text": {**known(TextParams, text.get("params")), "representation": text.get("representation", "embedding")},
        "executor": {"n_jobs": jobs, **({"kind": "dask", "address": dask_address} if dask_address else {})},
        "cache": {"enabled": cache_dir is not None, "dir": str(cache_dir or ".mmer_cache")},
    }
    return build(Params, data)


def check_features(bundle: dict, name: str, store: Path) -> None:
    """Stop when a store made here differs from what the bundle was trained on (e.g. other model weights)."""
    from pipeline.bundle import store_features

    made, recorded = store_features(store), bundle["features"][name]
    for key in sorted(set(made) & set(recorded) - {"params"}) + ["params"]:
        a, b = recorded.get(key), made.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff:
                k = diff[0]
                raise ValueError(
                    f"{name} features differ from the bundle's: {key}.{k} is {b.get(k)!r} here, {a.get(k)!r} in "
                    "bundle.json (another library or model version?); predict with the environment that made it"
                )
        elif a != b:
            raise ValueError(f"{name} features differ from the bundle's: {key} differs (another library version?)")


def write_inputs(clips: pd.DataFrame, bundle: dict) -> None:
    """The scratch project's data/manifest.parquet (no label checks: these clips may have none)."""
    from pipeline.stages import MANIFEST
    from pipeline.store import manifest_schema, write_store

    table = clips.assign(label=clips["label"].astype(object), group=None, split=None)
    table = table[["clip_id", "audio_path", "text", "label", "group", "split"]]
    write_store(table, MANIFEST, manifest_schema(), {"store": "manifest", "classes": bundle["classes"]})


def extract(params, bundle: dict, clips: pd.DataFrame) -> dict[str, str]:
    """Run the feature stages the bundle reads; returns ``{clip_id: error}`` of clips that could not be used."""
    from pipeline.stages import (
        AUDIO_ERRORS,
        AUDIO_STORE,
        ESSENTIA_ERRORS,
        ESSENTIA_STORE,
        MELSPEC_STORE,
        MUSICNN_ERRORS,
        MUSICNN_STORE,
        TEXT_STORE,
    )
    from pipeline.store import read_store

    sets = bundle["audio_sets"]
    errors: dict[str, str] = {}
    if "audio" in bundle["modalities"]:
        from pipeline.stages import audio_features, essentia_features, musicnn_features

        no_audio = clips["audio_path"].isna()
        errors.update({cid: "no audio file" for cid in clips.loc[no_audio, "clip_id"]})
        if no_audio.all():
            return errors
        audio_set = "melspec" if "melspec" in sets else "descriptors"
        store = MELSPEC_STORE if audio_set == "melspec" else AUDIO_STORE
        stages = [(audio_features, AUDIO_ERRORS, store, audio_set)] if {"descriptors", "melspec"} & set(sets) else []
        stages += [(essentia_features, ESSENTIA_ERRORS, ESSENTIA_STORE, "essentia")] if "essentia" in sets else []
        if any(s.startswith("musicnn") for s in sets):
            stages.append((musicnn_features, MUSICNN_ERRORS, MUSICNN_STORE, "musicnn"))
        for stage, table, store, name in stages:
            stage.run(params)
            for row in read_store(table).itertuples():
                errors.setdefault(row.clip_id, f"{row.stage}: {row.error_type}: {row.message}")
            for audio_set in [s for s in sets if s == name or (name == "musicnn" and s.startswith("musicnn"))]:
                check_features(bundle, audio_set, store)
    if "text" in bundle["modalities"] and params.text.representation == "embedding":
        from pipeline.stages import text_features
        from pipeline.stages.bundle import text_weights

        here, recorded = text_weights(params.text.model), bundle["features"]["text"].get("weights")
        if recorded is not None and here != recorded:
            raise ValueError(f"the text model here is {here}; the bundle was trained with {recorded}: install that one")
        text_features.run(params)
        check_features(bundle, "text", TEXT_STORE)
    return errors


def model_inputs(bundle: dict, params, clips: pd.DataFrame, usable: np.ndarray) -> dict[str, np.ndarray]:
    """The blocks of the ``usable`` clips, in the bundle's column order."""
    from pipeline.features.text import clean_text
    from pipeline.stages import MELSPEC_STORE, TEXT_STORE
    from pipeline.stages.train import load_audio_block
    from pipeline.store import read_matrix, read_tensor

    ids = clips["clip_id"].to_numpy()[usable]
    blocks: dict[str, np.ndarray] = {}
    if "audio" in bundle["modalities"] and bundle["audio_sets"] == ["melspec"]:
        tensor_ids, tensors, _ = read_tensor(MELSPEC_STORE)
        blocks["audio"] = tensors[pd.Series(np.arange(len(tensor_ids)), index=tensor_ids).loc[ids].to_numpy()]
    elif "audio" in bundle["modalities"]:
        audio = load_audio_block(bundle["audio_sets"])
        missing = [c for c in bundle["audio_columns"] if c not in audio.columns]
        if missing:
            raise ValueError(f"the extracted features lack {len(missing)} of the bundle's columns, e.g. {missing[0]}")
        blocks["audio"] = audio.loc[ids, bundle["audio_columns"]].to_numpy(dtype=np.float32)
    if "text" in bundle["modalities"]:
        texts = clips["text"].to_numpy(dtype=object)[usable]
        t = params.text
        cleaned = np.array([clean_text(x, t.strip_timestamps, t.strip_sections, t.lowercase) for x in texts], object)
        if t.representation == "tfidf":
            blocks["text"], blocks["text_present"] = cleaned, np.array([bool(x) for x in cleaned])
        else:  # as in training: a clip without text has a null embedding (zeros, present False)
            text_ids, matrix, present = read_matrix(TEXT_STORE)
            rows = pd.Series(np.arange(len(text_ids)), index=text_ids).loc[ids].to_numpy()
            blocks["text"], blocks["text_present"] = matrix[rows], present[rows]
    return blocks


def predict(
    bundle_dir: str | Path,
    inputs: list[str | Path],
    *,
    columns: dict[str, str] | None = None,
    jobs: int = -1,
    dask_address: str | None = None,
    cache_dir: str | Path | None = ".mmer_cache",
) -> tuple[pd.DataFrame, dict | None]:
    """Predictions for every input clip (error rows included), and metrics when every usable clip has a label."""
    bundle_dir = Path(bundle_dir)
    bundle = read_bundle(bundle_dir)
    targets = bundle.get("targets", []) if bundle.get("task") == "regression" else []
    clips = collect_inputs(inputs, columns, keep=targets)
    table, predicted = predict_clips(bundle_dir, bundle, clips, jobs, dask_address, cache_dir)
    usable = table["error"].isna().to_numpy()
    if targets:
        return table, regression_metrics_of(clips, predicted, usable, targets, bundle.get("target_center", 0.0))
    return table, labelled_metrics(clips, predicted, usable, bundle["classes"])


def predict_clips(
    bundle_dir: Path, bundle: dict, clips: pd.DataFrame, jobs: int, dask_address: str | None, cache_dir
) -> tuple[pd.DataFrame, np.ndarray]:
    """The predictions table of ``clips`` (collected inputs) and their probabilities (NaN rows where they failed);
    a regression bundle's table has ``pred_<target>`` columns and the values come back instead."""
    from pipeline.evaluation import predict_all_classes
    from pipeline.models import load_learner

    cache = None if cache_dir is None else Path(cache_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="mmer-predict-") as tmp, working_directory(Path(tmp)):
        params = feature_params(bundle, jobs, dask_address, cache)
        write_inputs(clips, bundle)
        errors = extract(params, bundle, clips)
        usable = ~clips["clip_id"].isin(errors).to_numpy()
        blocks = model_inputs(bundle, params, clips, usable) if usable.any() else {}
    classes = bundle["classes"]
    has_text = np.zeros(len(clips), dtype=bool)
    if "text_present" in blocks:
        has_text[usable] = blocks["text_present"]
    table = pd.DataFrame({"clip_id": clips["clip_id"], "path": clips["audio_path"]})
    if bundle.get("task") == "regression":
        proba = np.full((len(clips), len(bundle["targets"])), np.nan)  # here: the predicted values
        if usable.any():
            proba[usable] = load_learner(bundle_dir / "model").predict(blocks)
        for k, target in enumerate(bundle["targets"]):
            table[f"pred_{target}"] = proba[:, k]
    else:
        proba = np.full((len(clips), len(classes)), np.nan)
        if usable.any():
            proba[usable] = predict_all_classes(load_learner(bundle_dir / "model"), blocks, len(classes))
        best = np.nan_to_num(proba).argmax(axis=1)
        table["predicted"] = [classes[k] if ok else None for k, ok in zip(best, usable)]
        for k, label in enumerate(classes):
            table[f"proba_{label}"] = proba[:, k]
    table["has_text"] = has_text
    table["modalities_used"] = [
        None if not ok else "+".join(m for m in bundle["modalities"] if m != "text" or text)
        for ok, text in zip(usable, has_text)
    ]
    table["error"] = [errors.get(cid) for cid in clips["clip_id"]]
    return table, proba


def window_bounds(duration_s: float, window_s: float, hop_s: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the windows of a song: every ``hop_s`` while a whole window fits, then one
    window ending at the song's end if the last one stopped short; a song shorter than a window is one window."""
    if duration_s <= window_s:
        return [(0.0, round(duration_s, 3))]
    starts = list(np.arange(0.0, duration_s - window_s + 1e-9, hop_s))
    if starts[-1] + window_s < duration_s - 1e-9:
        starts.append(duration_s - window_s)
    return [(round(float(a), 3), round(float(a) + window_s, 3)) for a in starts]


def predict_windows(
    bundle_dir: str | Path,
    table: pd.DataFrame,
    texts: dict[str, str | None],
    window_s: float,
    hop_s: float,
    *,
    jobs: int = -1,
    dask_address: str | None = None,
) -> pd.DataFrame:
    """Class probabilities per window of each predicted song: clip_id, start_s, end_s, proba_*, error.

    Each window is cut from the decoded file (its native sample rate) and goes through the
    same extraction and model as a whole clip; its text is the song's whole text (no
    timing of the lyrics is known).
    """
    import soundfile as sf

    bundle_dir = Path(bundle_dir)
    bundle = read_bundle(bundle_dir)
    if "audio" not in bundle["modalities"]:
        raise ValueError("--window needs a bundle that reads audio; this one reads text only")
    rows, unreadable = [], []
    with tempfile.TemporaryDirectory(prefix="mmer-windows-") as tmp:
        for song in table.loc[table["error"].isna()].itertuples():
            try:  # a format the pipeline's decoder reads but libsndfile does not: an error row, not a crash
                audio, sr = sf.read(song.path, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                unreadable.append({"clip_id": song.clip_id, "error": f"windows: {type(exc).__name__}: {exc}"})
                continue
            for k, (start, end) in enumerate(window_bounds(len(audio) / sr, window_s, hop_s)):
                path = Path(tmp) / f"w{len(rows):06d}.wav"
                sf.write(path, audio[round(start * sr) : round(end * sr)], sr, subtype="FLOAT")  # no requantising
                rows.append(
                    {
                        "clip_id": f"{song.clip_id}#{k}",
                        "audio_path": str(path),
                        "text": texts.get(song.clip_id),
                        "label": None,
                        "song": song.clip_id,
                        "start_s": start,
                        "end_s": end,
                    }
                )
        failed = pd.DataFrame(unreadable, columns=["clip_id", "error"])
        if not rows:
            return failed.reindex(columns=["clip_id", "start_s", "end_s", "error"])
        windows = pd.DataFrame(rows)
        predicted, _ = predict_clips(
            bundle_dir, bundle, windows[["clip_id", "audio_path", "text", "label"]], jobs, dask_address, None
        )
    out = windows[["song", "start_s", "end_s"]].rename(columns={"song": "clip_id"})
    probabilities = [c for c in predicted.columns if c.startswith(("proba_", "pred_"))]
    out = pd.concat([out, predicted[probabilities + ["error"]]], axis=1)
    return pd.concat([out, failed], ignore_index=True) if len(failed) else out


def windows_svg(windows: pd.DataFrame, title: str) -> str:
    """Class probabilities of one song's windows over time (window centres), as inline SVG."""
    import matplotlib.pyplot as plt

    from pipeline.report_html import svg

    fig, ax = plt.subplots(figsize=(6.0, 2.6))
    centres = (windows["start_s"] + windows["end_s"]) / 2
    regression = any(c.startswith("pred_") for c in windows.columns)
    for column in [c for c in windows.columns if c.startswith(("proba_", "pred_"))]:
        ax.plot(centres, windows[column], marker="o", markersize=3, label=column.split("_", 1)[1])
    if not regression:
        ax.set_ylim(0, 1)
    ax.set_xlabel("time (s), window centres")
    ax.set_ylabel("predicted value" if regression else "probability")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    return svg(fig)


def labelled_metrics(clips: pd.DataFrame, proba: np.ndarray, usable: np.ndarray, classes: list[str]) -> dict | None:
    """Macro metrics (with the 95% bootstrap CI of macro-F1) of the usable clips, when all of them have labels."""
    labels = clips["label"].to_numpy(dtype=object)[usable]
    if not usable.any() or pd.isna(labels).any():
        return None
    unknown = sorted({str(label) for label in labels} - set(classes))
    if unknown:
        raise ValueError(f"input labels {unknown} are not among the bundle's labels {classes}")
    from pipeline.evaluation import bootstrap_f1_ci, classification_metrics, pooled_f1

    y = np.array([classes.index(label) for label in labels])
    scores = classification_metrics(y, proba[usable])
    return {
        **scores,
        "f1_macro_pooled": pooled_f1(y, proba[usable]),
        "f1_macro_ci95": bootstrap_f1_ci(y, proba[usable], n_boot=1000, seed=0),
        "n_clips": int(usable.sum()),
    }


def regression_metrics_of(
    clips: pd.DataFrame, predicted: np.ndarray, usable: np.ndarray, targets: list[str], center: float
) -> dict | None:
    """CCC and friends (with the 95% bootstrap CI of the mean CCC) of the usable clips, when all of them
    have every target as a number; None otherwise."""
    values = clips[targets].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)[usable]
    if not usable.any() or not np.isfinite(values).all():
        return None
    from pipeline.evaluation import Regression, bootstrap_ccc_ci, pooled_ccc

    return {
        **Regression(tuple(targets), center).scores(values, predicted[usable]),
        "ccc_mean_pooled": pooled_ccc(values, predicted[usable]),
        "ccc_mean_ci95": bootstrap_ccc_ci(values, predicted[usable], n_boot=1000, seed=0),
        "n_clips": int(usable.sum()),
    }


def write_table(table: pd.DataFrame, out: str | Path) -> None:
    """The predictions as .parquet, .csv or .jsonl (by the extension), atomically."""
    from pipeline.store import atomic_path

    out = Path(out)
    if out.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {out}: the extension must be one of {', '.join(OUTPUT_SUFFIXES)}")
    with atomic_path(out) as tmp:
        if out.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        elif out.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_json(tmp, orient="records", lines=True)
