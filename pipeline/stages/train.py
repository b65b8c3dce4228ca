"""Stage ``train@<model>-<fusion>``: cross-validate one learner x fusion variant.

scikit-learn (behind :mod:`pipeline.evaluation`) is imported by the steps that fit and
score, so a variant the corpus cannot run is recorded as skipped in well under a second.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.features.text import clean_text
from pipeline.fusion import FUSIONS, MODALITIES, modalities_for
from pipeline.models import TORCH_LEARNERS, ZERO_SHOT, make_learner
from pipeline.params import Params, as_dict, check_audio_sets, check_text_sets, parse_encoder_set
from pipeline.stages import (
    AUDIO_STORE,
    ENCODER_MODELS,
    ESSENTIA_STORE,
    MANIFEST,
    MELSPEC_STORE,
    MODELS,
    MUSICNN_STORE,
    encoder_store,
    text_set_store,
)
from pipeline.store import (
    oof_schema,
    read_matrix,
    read_metadata,
    read_store,
    read_tensor,
    store_metadata,
    write_json,
    write_store,
)

if TYPE_CHECKING:
    from pipeline.evaluation import Split
    from pipeline.models.base import Learner

LIBRARIES = ("scikit-learn", "lightgbm", "torch")

TEXT_CLEANING = ("strip_timestamps", "strip_sections", "lowercase")  # the text.* keys TF-IDF texts are cleaned with
# The params.yaml keys that every variant's results depend on: each train stage of dvc.yaml lists them, plus
# those :func:`param_keys` adds for its variant (tests/test_dvc_params.py keeps dvc.yaml and this in step).
# oof.parquet and metrics.json record the whole ``eval`` and ``train`` sections as provenance (``run_params``).
TRAIN_PARAM_KEYS = (
    "seed",
    "task",
    "dataset.targets",
    "dataset.target_center",
    "tune.enabled",
    "tune.n_trials",
    "tune.sampler",
    "tune.timeout_s",
    "tune.metric",
    "tune.inner_folds",
    "tune.inner_folds_torch",
    "tune.grid_points",
    "dataset.labels",
    "eval.scheme",
    "eval.n_folds",
    "eval.n_repeats",
    "eval.val_fraction",
    "train.audio_sets",
    "train.pca_dim",
    "train.class_weight",
    "train.normalize",
    "train.normalize_min_clips",
    "train.normalize_text",
    "train.regression_loss",
    "train.n_threads",
    "text.representation",
    "text.tfidf_dim",
    *(f"text.{key}" for key in TEXT_CLEANING),
)

# audio set -> (store, prefix of its columns; None = every numeric column)
AUDIO_SET_COLUMNS = {
    "descriptors": (AUDIO_STORE, None),
    "essentia": (ESSENTIA_STORE, None),
    "musicnn": (MUSICNN_STORE, "pool_"),
    "musicnn_penultimate": (MUSICNN_STORE, "penultimate_"),
    "musicnn_tags": (MUSICNN_STORE, "tag_"),
}
# audio set -> the params section whose ``enabled`` switch empties its store (the descriptors are always on)
AUDIO_SET_SWITCH = {
    "essentia": "essentia",
    "musicnn": "musicnn",
    "musicnn_penultimate": "musicnn",
    "musicnn_tags": "musicnn",
}


def regression_oof_schema(targets: list[str]) -> pa.Schema:
    """``models/<variant>/oof.parquet`` under ``task: regression``: true and predicted value of each target."""
    targets = list(targets)
    return pa.schema(
        [("clip_id", pa.string()), ("repeat", pa.int32()), ("fold", pa.int32()), ("label", pa.string())]
        + [(f"true_{t}", pa.float64()) for t in targets]
        + [(f"pred_{t}", pa.float64()) for t in targets]
    )


def param_keys(model: str, audio_sets: list[str] | None = None, text_sets: list[str] | None = None) -> list[str]:
    """The params.yaml keys variant ``model`` (with ``--audio-sets audio_sets``) reads, as its DVC stage lists them.

    :data:`TRAIN_PARAM_KEYS`, the ``enabled`` switch of each ``--audio-sets`` store and the
    learner's own sections ``train.<model>`` and ``tune.space.<model>`` (the dummy has none). ``musicnn.enabled`` also
    decides the clips of every variant (:func:`shared_audio_sets`), through the musicnn
    store that it empties: a dependency of every train stage. An encoder set ``enc:<name>`` adds
    ``encoders.<name>`` (its ``train_layers``, its prompts), a text set ``<name>`` ``text_encoders.<name>``.
    """
    switches = sorted({f"{AUDIO_SET_SWITCH[s]}.enabled" for s in audio_sets or [] if s in AUDIO_SET_SWITCH})
    own = [] if model in ("dummy", ZERO_SHOT) else [f"train.{model}", f"tune.space.{model}"]
    encoders = [f"encoders.{parse_encoder_set(s)[0]}" for s in audio_sets or [] if parse_encoder_set(s)]
    encoders += [f"text_encoders.{s}" for s in text_sets or [] if s != "default"]
    return [*TRAIN_PARAM_KEYS, *switches, *own, *encoders]


def load_audio_block(audio_sets: list[str]) -> pd.DataFrame:
    """The audio modality: the feature columns of each named audio set, joined on clip_id."""
    block = None
    for name in audio_sets:
        if parse_encoder_set(name):
            table = encoder_columns(*parse_encoder_set(name))
        else:
            store, prefix = AUDIO_SET_COLUMNS[name]
            table = read_store(store).set_index("clip_id").select_dtypes("number")
            if prefix is not None:
                table = table[[c for c in table.columns if c.startswith(prefix)]]
        table = table.add_prefix(f"{name}:")
        block = table if block is None else block.join(table, how="inner")
    return block


def encoder_columns(encoder: str, layers: str) -> pd.DataFrame:
    """Columns of ``features/enc_<encoder>.parquet`` by clip_id: ``all`` stored layers, one layer ``L<k>``,
    ``avg`` (each statistic averaged over the stored layers, columns ``avg_<stat>_<i>``) or ``emb`` (CLAP)."""
    path = encoder_store(encoder)
    table = read_store(path).set_index("clip_id").drop(columns=["n_windows"])
    if layers == "emb":
        columns = [c for c in table.columns if c.startswith("emb_")]
        if not columns:
            raise ValueError(f"{path}: no emb_ columns: only a CLAP encoder (kind clap) stores its joint embedding")
        return table[columns]
    hidden = table[[c for c in table.columns if c.startswith("L")]]
    if layers == "all":
        return hidden
    if layers.startswith("L"):
        columns = [c for c in hidden.columns if c.startswith(f"L{int(layers[1:]):02d}_")]
        if not columns:
            stored = sorted({c.split("_")[0] for c in hidden.columns})
            raise ValueError(f"{path}: layer {layers} is not stored (stored: {stored}); add it to encoders layers")
        return hidden[columns]
    parts = hidden.columns.str.split("_", n=1)
    per_layer = {}
    for (layer, rest), column in zip(parts, hidden.columns):
        per_layer.setdefault(layer, []).append((rest, column))
    shapes = {tuple(rest for rest, _ in cols) for cols in per_layer.values()}
    if len(shapes) != 1:
        raise ValueError(f"{path}: avg needs layers of equal width; use L<k> or all for this encoder")
    stacked = np.stack([hidden[[c for _, c in cols]].to_numpy(np.float64) for cols in per_layer.values()])
    names = [f"avg_{rest}" for rest in shapes.pop()]
    return pd.DataFrame(stacked.mean(axis=0).astype(np.float32), index=hidden.index, columns=names)


def shared_audio_sets(params: Params) -> list[str]:
    """The audio sets whose stores decide the clips of every variant: the descriptors
    (and log-mels), ``train.audio_sets``, and musicnn when enabled (train_musicnn reads it)."""
    sets = ["descriptors", *params.train.audio_sets, *(["musicnn"] if params.musicnn.enabled else [])]
    return list(dict.fromkeys(sets))


def shared_stores(params: Params) -> set:
    """The store files behind :func:`shared_audio_sets`."""
    return {AUDIO_SET_COLUMNS[name][0] for name in shared_audio_sets(params)}


class Blocks(NamedTuple):
    """What :func:`load_blocks` reads: the clips a variant is scored on and their modality blocks."""

    rows: pd.DataFrame  # the manifest rows kept: clip_id, label, group, split, fold
    blocks: dict[str, np.ndarray]  # modality (audio, text, text_present) -> one row per clip of ``rows``
    n_excluded: int  # manifest clips left out (missing from a feature store)
    audio_names: list[str]  # the audio block's column names, ``<set>:<feature>``


def load_blocks(
    audio_sets: list[str],
    text_representation: str = "embedding",
    cleaning: dict | None = None,
    melspec: bool = False,
    shared_sets: list[str] | None = None,
    targets: list[str] = (),
    text_sets: list[str] = ("default",),
) -> Blocks:
    """Manifest rows present in every feature store, the modality blocks, how many were dropped, audio column names.

    Every variant sees the same clips (and so the same folds), whatever its learner,
    fusion and audio sets: clips missing from the store of any of ``shared_sets``
    (:func:`shared_audio_sets`; recorded in its errors table) or from the log-mel store
    are left out, never imputed. ``targets``: manifest columns kept in ``rows`` (regression).
    ``text_sets``: the text stores whose embeddings form the text block, side by side.
    With ``melspec``, the audio block is the (clips, mel
    bands, frames) log-mel tensor. A clip without text stays in: its ``text_present``
    is False and its text block is zeros (embeddings) or ``""`` (tfidf, where
    blocks["text"] holds cleaned texts). A modality no clip has (a text-only or
    audio-only corpus) has no block at all.
    """
    manifest = read_store(MANIFEST)
    manifest = manifest[
        [c for c in ("clip_id", "audio_path", "label", "group", "split", "fold", "text") if c in manifest]
        + list(targets)
    ]
    ids, matrix, present = read_text_sets(text_sets)
    has_audio = bool(manifest["audio_path"].notna().any())
    keep = manifest["clip_id"].isin(ids).to_numpy().copy()
    audio = pd.DataFrame()
    if has_audio:
        audio = load_audio_block(audio_sets)
        keep &= manifest["clip_id"].isin(audio.index).to_numpy()
        stores = {MELSPEC_STORE} | {AUDIO_SET_COLUMNS[name][0] for name in shared_sets or []}
        for store in sorted(stores):
            keep &= manifest["clip_id"].isin(read_store(store, columns=["clip_id"])["clip_id"]).to_numpy()
    rows = manifest[keep].reset_index(drop=True)
    text_rows = pd.Series(np.arange(len(ids)), index=ids).loc[rows["clip_id"]].to_numpy()
    blocks: dict[str, np.ndarray] = {}
    if has_audio and melspec:
        tensor_ids, tensors, _ = read_tensor(MELSPEC_STORE)
        blocks["audio"] = tensors[
            pd.Series(np.arange(len(tensor_ids)), index=tensor_ids).loc[rows["clip_id"]].to_numpy()
        ]
    elif has_audio:
        blocks["audio"] = audio.loc[rows["clip_id"]].to_numpy(dtype=np.float32)
    if present[text_rows].any():
        if text_representation == "tfidf":
            blocks["text"] = np.array([clean_text(t, **(cleaning or {})) for t in rows["text"]], dtype=object)
        else:
            blocks["text"] = matrix[text_rows]
        blocks["text_present"] = present[text_rows]
    return Blocks(rows.drop(columns=["text", "audio_path"]), blocks, int((~keep).sum()), list(audio.columns))


def read_text_sets(text_sets: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip_ids, embeddings of every text set side by side, present) in the first store's clip order."""
    ids, matrix, present = read_matrix(text_set_store(text_sets[0]))
    for name in text_sets[1:]:
        other_ids, other, _ = read_matrix(text_set_store(name))
        rows = pd.Series(np.arange(len(other_ids)), index=other_ids).reindex(ids)
        if rows.isna().any():
            raise ValueError(f"{text_set_store(name)} lacks clips of {text_set_store(text_sets[0])}; rerun its stage")
        matrix = np.hstack([matrix, other[rows.to_numpy(dtype=int)]])
    return ids, matrix, present


def lgbm_importance(fitted: list, fusion: str, audio_names: list[str], text_width: int) -> dict[str, float]:
    """Mean split gain per input column over the folds' LightGBM models, by column name.

    Columns are named ``audio:<set>:<feature>``, ``text:<index>`` and ``text:missing``.
    Only for variants whose columns are the inputs themselves (audio, text, concat): the
    elementwise fusions see per-fold PCA components, which mean nothing across folds.
    """
    names = {
        "audio": [f"audio:{n}" for n in audio_names],
        "text": [f"text:{i:03d}" for i in range(text_width)] + ["text:missing"],
    }
    columns = [n for m in modalities_for(fusion) for n in names[m]]
    gains = np.mean([getattr(f, "learner_", f).estimator_.booster_.feature_importance("gain") for f in fitted], axis=0)
    if len(columns) != len(gains):  # e.g. TF-IDF text, whose width is chosen per fold
        return {}
    return {name: float(g) for name, g in zip(columns, gains)}


def check_variant(model: str, fusion: str) -> None:
    """The dummy runs once, with fusion ``none``; every other learner needs a real fusion."""
    if (model == "dummy") != (fusion == "none"):
        raise ValueError(
            "the dummy learner ignores its inputs: train it with --fusion none"
            if model == "dummy"
            else f"fusion 'none' is for the dummy learner only; {model} needs one of {FUSIONS}"
        )
    if fusion != "none" and fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")


@dataclass(frozen=True)
class Variant:
    """One train variant: its learner, fusion and audio sets, and its name in ``models/`` and the report."""

    model: str
    fusion: str
    name: str  # ``<model>``, or ``<model>@<set>+<set>`` with ``--audio-sets``
    audio_sets: list[str]  # the audio stores of its audio modality
    skipped: str | None = None  # why it cannot run here (a disabled store), if it cannot
    folder: Path = MODELS  # models/, or models/enc/ for the variants of an encoder store
    text_sets: tuple[str, ...] = ("default",)  # the text stores of its text modality

    @property
    def out_dir(self) -> Path:
        """``models/<name>-<fusion>`` (``models/enc/<name>-<fusion>`` with an encoder store)."""
        return self.folder / f"{self.name}-{self.fusion}"


class Evaluation(NamedTuple):
    """A variant's protocol (labels or targets, splits) and what cross-validation made of it."""

    classes: list[str]  # label names (``y`` and the columns of ``proba`` index them), or the regression targets
    y: np.ndarray  # class indices, or (clips, targets) values
    splits: list[Split]
    proba: np.ndarray  # (test rows of all splits, classes) probabilities, or (test rows, targets) predictions
    per_fold: list[dict]
    fitted: list  # the learner of each split
    train_seconds: float
    tuning: dict | None = None  # tune.enabled: the search and each outer fold's chosen values


def run(
    params: Params, model: str, fusion: str, audio_sets: list[str] | None = None, text_sets: list[str] | None = None
) -> None:
    """Write models/<model>-<fusion>/{metrics.json, oof.parquet, folds/} (+ importance.json for lgbm).

    ``audio_sets`` replaces ``train.audio_sets`` for this variant, which is then named
    ``<model>@<set>+<set>`` (``models/lgbm@musicnn-concat``) in its folder and the report. ``text_sets``
    (other than ``default``) puts it in models/enc/, named ``<model>@<sets>`` as well.
    """
    variant = resolve_variant(params, model, fusion, audio_sets, text_sets)
    if variant.skipped:
        write_skipped(variant.out_dir, variant.name, fusion, variant.skipped)
        return
    missing = missing_encoder_clips(params, variant)
    if missing:
        write_skipped(variant.out_dir, variant.name, fusion, missing)
        return
    data = load_variant_blocks(params, variant)
    wanted = wanted_modalities(variant, data.blocks)
    absent = [m for m in wanted if m not in data.blocks]
    if absent:
        write_skipped(variant.out_dir, variant.name, fusion, ", ".join(f"no clip has {m}" for m in absent), absent)
        return
    blocks = {key: value for key, value in data.blocks.items() if key.removesuffix("_present") in wanted}
    evaluation = cross_validate_variant(params, variant, data.rows, blocks)
    write_outputs(params, variant, data, wanted, evaluation)


def resolve_variant(
    params: Params, model: str, fusion: str, audio_sets: list[str] | None = None, text_sets: list[str] | None = None
) -> Variant:
    """Check a variant's learner, fusion, ``audio_sets`` (None: ``train.audio_sets``) and ``text_sets``
    (None: ``default``, features/text.parquet) and name it."""
    check_variant(model, fusion)
    if model == ZERO_SHOT:
        return zero_shot_variant(params, fusion, audio_sets)
    variant = audio_variant(params, model, fusion, audio_sets)
    if not text_sets or list(text_sets) == ["default"]:
        return variant
    check_text_sets(params, list(text_sets), "--text-sets")
    if model == "dummy":
        raise ValueError("--text-sets applies to learners that read text; the dummy reads nothing")
    name = f"{variant.name}{'+' if '@' in variant.name else '@'}{'+'.join(text_sets)}"
    return dataclasses.replace(variant, name=name, folder=ENCODER_MODELS, text_sets=tuple(text_sets))


def audio_variant(params: Params, model: str, fusion: str, audio_sets: list[str] | None) -> Variant:
    """The variant of ``audio_sets`` (None: ``train.audio_sets``), named after them."""
    if audio_sets is None:
        return Variant(model, fusion, model, list(params.train.audio_sets))
    check_audio_sets(params, audio_sets, "--audio-sets", require_enabled=False)
    if model in ("dummy", "cnn"):
        raise ValueError(f"--audio-sets applies to the vector learners; {model} does not read audio stores")
    if any(parse_encoder_set(s) for s in audio_sets):
        return encoder_variant(params, model, fusion, audio_sets)
    name = f"{model}@{'+'.join(audio_sets)}"
    switches = {AUDIO_SET_SWITCH[s] for s in audio_sets if s in AUDIO_SET_SWITCH}
    disabled = sorted(switch for switch in switches if not getattr(params, switch).enabled)
    if disabled:
        needs, off = ", ".join(disabled), " and ".join(f"{d}.enabled is false" for d in disabled)
        return Variant(model, fusion, name, list(audio_sets), skipped=f"its audio sets need {needs}, and {off}")
    outside = [s for s in audio_sets if AUDIO_SET_COLUMNS[s][0] not in shared_stores(params)]
    if outside:
        raise ValueError(
            f"--audio-sets {outside}: every variant is scored on the clips of the stores in "
            f"{shared_audio_sets(params)}; add {outside} to train.audio_sets so that all variants share clips"
        )
    return Variant(model, fusion, name, list(audio_sets))


def encoder_variant(params: Params, model: str, fusion: str, audio_sets: list[str]) -> Variant:
    """A variant reading encoder stores: ``enc:<name>`` takes the encoder's ``train_layers``; it is named
    ``<model>@<name>`` (``<model>@<name>.<layers>`` with explicit layers) and lives in models/enc/."""
    sets, labels = [], []
    for spec in audio_sets:
        parsed = parse_encoder_set(spec)
        if parsed is None:
            sets.append(spec)
            labels.append(spec)
            continue
        encoder, layers = parsed
        sets.append(f"enc:{encoder}:{layers or params.encoders[encoder].train_layers}")
        labels.append(f"{encoder}.{layers}" if layers else encoder)
    return Variant(model, fusion, f"{model}@{'+'.join(labels)}", sets, folder=ENCODER_MODELS)


def zero_shot_variant(params: Params, fusion: str, audio_sets: list[str] | None) -> Variant:
    """``zeroshot@<name>-audio``: CLAP prompts scored against the encoder store's joint embeddings."""
    encoders = [parse_encoder_set(s) for s in audio_sets or []]
    if fusion != "audio" or len(encoders) != 1 or encoders[0] is None:
        raise ValueError("the zero-shot learner runs as --fusion audio --audio-sets enc:<clap encoder>")
    check_audio_sets(params, audio_sets, "--audio-sets", require_enabled=False)
    name = encoders[0][0]
    skipped = None
    if params.task != "classification":
        skipped = "zero-shot scores labels; task is regression"
    elif not params.encoders[name].prompts:
        skipped = f"encoders.{name} has no prompts (a CLAP encoder with prompts per label runs zero-shot)"
    return Variant(ZERO_SHOT, fusion, f"{ZERO_SHOT}@{name}", [f"enc:{name}:emb"], skipped, ENCODER_MODELS)


def missing_encoder_clips(params: Params, variant: Variant) -> str | None:
    """Why an encoder variant cannot be compared with the others: clips they are scored on that its encoder
    store lacks (the report compares every variant on the same clips). None when nothing is missing."""
    for spec in variant.audio_sets:
        if not parse_encoder_set(spec):
            continue
        store = encoder_store(parse_encoder_set(spec)[0])
        encoded = set(read_store(store, columns=["clip_id"])["clip_id"])
        shared = None
        for path in sorted(shared_stores(params) | {MELSPEC_STORE}):
            ids = set(read_store(path, columns=["clip_id"])["clip_id"])
            shared = ids if shared is None else shared & ids
        lost = sorted((shared or set()) - encoded)
        if lost:
            return (
                f"{len(lost)} clips the other variants are scored on are not in {store} (e.g. {lost[0]}; see "
                f"{store.name.replace('.parquet', '_errors.parquet')}), so it cannot be compared clip by clip"
            )
    return None


def load_variant_blocks(params: Params, variant: Variant) -> Blocks:
    """:func:`load_blocks` for a variant: its audio sets (the log-mels for the cnn), its text representation."""
    cleaning = {key: getattr(params.text, key) for key in TEXT_CLEANING}
    return load_blocks(
        variant.audio_sets,
        params.text.representation,
        cleaning,
        melspec=variant.model == "cnn",
        shared_sets=shared_audio_sets(params),
        targets=params.dataset.targets if params.task == "regression" else [],
        text_sets=list(variant.text_sets),
    )


def wanted_modalities(variant: Variant, blocks: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The modalities a variant reads: its fusion's, or the first one the corpus has for the dummy."""
    available = [m for m in MODALITIES if m in blocks]
    return tuple(available[:1]) if variant.model == "dummy" else modalities_for(variant.fusion)


def cross_validate_variant(
    params: Params, variant: Variant, rows: pd.DataFrame, blocks: dict[str, np.ndarray]
) -> Evaluation:
    """Labels and splits of the ``eval`` protocol, then a fresh learner fitted and scored per split."""
    from pipeline.evaluation import Classification, Regression, cross_validate, make_splits, quadrant_codes

    if params.task == "regression":
        from pipeline.datasets.manifest import target_values

        classes = list(params.dataset.targets)
        y = target_values(rows, classes)
        task = Regression(tuple(classes), params.dataset.target_center)
        strata = quadrant_codes(y - params.dataset.target_center)  # folds keep each quadrant's share
    else:
        classes = params.dataset.labels or read_metadata(MANIFEST)["classes"]
        y = np.array([classes.index(label) for label in rows["label"]])
        task, strata = Classification(len(classes)), y
    ev = params.eval
    splits = make_splits(
        strata,
        grouping(rows),
        scheme=ev.scheme,
        n_folds=ev.n_folds,
        n_repeats=ev.n_repeats,
        val_fraction=ev.val_fraction,
        seed=params.seed,
        split=rows["split"].to_numpy(dtype=object) if ev.scheme == "fixed" else None,
        fold=rows["fold"].to_numpy(dtype=object) if ev.scheme == "predefined" else None,
    )
    fitted: list = []
    if variant.model == ZERO_SHOT:
        build, tuner, prepare = zero_shot_factory(variant, classes), None, None
    else:
        build = learner_factory(params, variant)
        tuner = make_tuner(params, variant, build, grouping(rows), len(classes), len(splits))
        prepare = group_normalizer(params, grouping(rows))
    started = time.perf_counter()
    probabilities, per_fold = cross_validate(build, blocks, y, splits, task, fitted, tuner, prepare)
    train_seconds = time.perf_counter() - started
    tuning = None if tuner is None else tuning_record(params, tuner)
    return Evaluation(classes, y, splits, np.concatenate(probabilities), per_fold, fitted, train_seconds, tuning)


def zero_shot_factory(variant: Variant, classes: list[str]):
    """``build()``: the zero-shot learner with the encoder store's label prompt embeddings, in ``classes`` order."""
    from pipeline.models.zeroshot import ZeroShotClassifier, label_matrix

    encoder = parse_encoder_set(variant.audio_sets[0])[0]
    meta = read_metadata(encoder_store(encoder))
    if not meta.get("prompt_embeddings"):
        raise ValueError(f"{encoder_store(encoder)}: no prompt embeddings; set encoders.{encoder}.prompts and rerun")
    matrix = label_matrix(meta["prompt_embeddings"], classes, f"zeroshot@{encoder}")
    return lambda **_: ZeroShotClassifier(matrix, meta["logit_scale"])


def group_normalizer(params: Params, groups: np.ndarray | None):
    """``train.normalize: group``: a ``prepare`` for cross_validate that z-scores the audio (and with
    ``normalize_text`` the text) block per group; small groups take the split's training-side statistics."""
    train_params = params.train
    if train_params.normalize != "group":
        return None
    if groups is None:
        raise ValueError(
            "train.normalize: group needs every clip's group (speaker, artist): map a manifest column to 'group' "
            "(dataset.columns) or use train.normalize: global"
        )
    from pipeline.normalize import group_standardize

    modalities = ["audio", *(["text"] if train_params.normalize_text else [])]

    def prepare(blocks: dict[str, np.ndarray], split) -> dict[str, np.ndarray]:
        reference = np.zeros(len(groups), dtype=bool)
        reference[np.concatenate([split.train, split.val])] = True
        out = dict(blocks)
        for m in modalities:
            if m in blocks and blocks[m].dtype != object:  # not the raw texts of the tfidf representation
                present = blocks.get(f"{m}_present")
                out[m] = group_standardize(blocks[m], groups, reference, train_params.normalize_min_clips, present)
        return out

    return prepare


def learner_factory(params: Params, variant: Variant):
    """``build(**values)``: a fresh learner of the variant, with tuned ``values`` in place of ``train``'s."""
    tfidf_dim = params.text.tfidf_dim if params.text.representation == "tfidf" else None
    options = dict(
        seed=params.seed,
        tfidf_dim=tfidf_dim,
        val_fraction=params.eval.val_fraction,
        dask=params.executor.dask(),
        task=params.task,
    )

    def build(**values) -> Learner:
        train = params.train
        if values:
            from pipeline.tuning import with_values

            train = with_values(train, variant.model, values)
        return make_learner(variant.model, variant.fusion, params=train, **options)

    return build


def make_tuner(params: Params, variant: Variant, build, groups: np.ndarray | None, n_classes: int, n_splits: int):
    """A :class:`pipeline.tuning.NestedTuner` for the variant when ``tune.enabled`` (and it has a space), else None."""
    if not params.tune.enabled or variant.model == "dummy":
        return None
    from pipeline.tuning import NestedTuner, configured_values, tunable_space

    space = tunable_space(getattr(params.tune.space, variant.model), variant.model, variant.fusion)
    if not space:
        return None
    return NestedTuner(
        build,
        space,
        configured_values(params.train, variant.model, list(space)),
        params.tune,
        groups=groups,
        n_classes=n_classes,
        val_fraction=params.eval.val_fraction,
        seed=params.seed,
        n_splits=n_splits,
        inner_folds=params.tune.inner_folds_torch if variant.model in TORCH_LEARNERS else params.tune.inner_folds,
        name=f"{variant.name}-{variant.fusion}",
    )


def tuning_record(params: Params, tuner) -> dict:
    """metrics.json "tuning": the search settings, the configured values and each outer fold's choice."""
    settings = {k: v for k, v in as_dict(params.tune).items() if k != "space"}
    space = {k: {f: v for f, v in as_dict(r).items() if v is not None} for k, r in tuner.space.items()}
    return {**settings, "space": space, "configured": tuner.configured, "folds": tuner.folds}


def grouping(rows: pd.DataFrame) -> np.ndarray | None:
    """Each clip's group, or None when the manifest has none (prepare allows all or none)."""
    return rows["group"].to_numpy() if rows["group"].notna().all() else None


def write_outputs(
    params: Params, variant: Variant, data: Blocks, wanted: tuple[str, ...], evaluation: Evaluation
) -> None:
    """oof.parquet, the first repeat's fold models, metrics.json (+ importance.json for lgbm); print macro-F1."""
    run_params = {
        "seed": params.seed,
        "eval": as_dict(params.eval),
        "train": {**as_dict(params.train), "audio_sets": variant.audio_sets},
    }
    classes, splits = evaluation.classes, evaluation.splits
    regression = params.task == "regression"
    write_store(
        (regression_oof if regression else oof_predictions)(data.rows, evaluation),
        variant.out_dir / "oof.parquet",
        regression_oof_schema(classes) if regression else oof_schema(classes),
        store_metadata(
            "oof", run_params, LIBRARIES, MANIFEST, model=variant.name, fusion=variant.fusion, classes=classes
        ),
    )
    save_fold_models(evaluation.fitted, splits, variant.out_dir / "folds")
    metrics = variant_metrics(params, variant, data, wanted, evaluation, run_params)
    write_json(metrics, variant.out_dir / "metrics.json")
    all_blocks = data.blocks
    if variant.model == "lgbm" and variant.fusion in ("audio", "text", "concat") and not regression:
        text_width = all_blocks["text"].shape[1] if "text" in all_blocks and all_blocks["text"].ndim == 2 else 0
        importance = lgbm_importance(evaluation.fitted, variant.fusion, data.audio_names, text_width)
        write_json(importance, variant.out_dir / "importance.json")
    primary, title = ("ccc_mean", "mean CCC") if regression else ("f1_macro", "macro-F1")
    score = metrics["summary"][primary]
    where = "the test split" if params.eval.scheme == "fixed" else f"{len(splits)} folds"
    print(f"train {variant.name}-{variant.fusion}: {title} {score['mean']:.3f} ± {score['std']:.3f} over {where}")


def oof_predictions(rows: pd.DataFrame, evaluation: Evaluation) -> pd.DataFrame:
    """One row per (repeat, test clip): fold, label, predicted label and ``proba_<class>`` columns."""
    splits, proba, classes = evaluation.splits, evaluation.proba, evaluation.classes
    test_rows = np.concatenate([s.test for s in splits])
    predictions = pd.DataFrame(
        {
            "clip_id": rows["clip_id"].to_numpy()[test_rows],
            "repeat": np.concatenate([np.full(len(s.test), s.repeat, np.int32) for s in splits]),
            "fold": np.concatenate([np.full(len(s.test), s.fold, np.int32) for s in splits]),
            "label": rows["label"].to_numpy()[test_rows],
            "predicted": np.array(classes)[proba.argmax(axis=1)],
        }
    )
    for k, c in enumerate(classes):
        predictions[f"proba_{c}"] = proba[:, k]
    return predictions.sort_values(["repeat", "clip_id"], kind="stable").reset_index(drop=True)


def regression_oof(rows: pd.DataFrame, evaluation: Evaluation) -> pd.DataFrame:
    """One row per (repeat, test clip): fold, label, and ``true_<target>`` / ``pred_<target>`` columns."""
    splits, predicted, targets = evaluation.splits, evaluation.proba, evaluation.classes
    test_rows = np.concatenate([s.test for s in splits])
    table = pd.DataFrame(
        {
            "clip_id": rows["clip_id"].to_numpy()[test_rows],
            "repeat": np.concatenate([np.full(len(s.test), s.repeat, np.int32) for s in splits]),
            "fold": np.concatenate([np.full(len(s.test), s.fold, np.int32) for s in splits]),
            "label": rows["label"].to_numpy()[test_rows],
        }
    )
    for k, t in enumerate(targets):
        table[f"true_{t}"] = evaluation.y[test_rows, k]
    for k, t in enumerate(targets):
        table[f"pred_{t}"] = predicted[:, k]
    return table.sort_values(["repeat", "clip_id"], kind="stable").reset_index(drop=True)


def variant_metrics(
    params: Params, variant: Variant, data: Blocks, wanted: tuple[str, ...], evaluation: Evaluation, run_params: dict
) -> dict:
    """The content of metrics.json: the variant, its clips and protocol, per-fold and summary scores, runtime."""
    from pipeline.evaluation import per_class_report, sorted_labels, summarize

    model, rows, all_blocks = variant.model, data.rows, data.blocks
    blocks = {key: value for key, value in all_blocks.items() if key.removesuffix("_present") in wanted}
    classes, y, splits, proba = evaluation.classes, evaluation.y, evaluation.splits, evaluation.proba
    ev = params.eval
    test_rows = np.concatenate([s.test for s in splits])
    first_repeat = np.concatenate([np.full(len(s.test), s.repeat == 0) for s in splits])
    regression = params.task == "regression"
    return {
        "model": variant.name,
        "learner": model,
        "fusion": variant.fusion,
        "task": params.task,
        "classes": [] if regression else classes,
        "targets": classes if regression else [],
        "scheme": ev.scheme,
        "n_clips": len(rows),
        "n_test_clips": len(np.unique(test_rows)),
        "n_excluded": data.n_excluded,
        "n_folds": len({s.fold for s in splits}),
        "n_repeats": len({s.repeat for s in splits}),
        # predefined scheme: the manifest's fold label of each fold index in oof.parquet and "folds"
        "fold_labels": sorted_labels(set(rows["fold"].astype(str))) if ev.scheme == "predefined" else None,
        "grouped": grouping(rows) is not None,
        "feature_dims": {
            m: list(blocks[m].shape[1:]) if blocks[m].ndim == 3 else int(blocks[m].shape[1])
            for m in wanted
            if blocks[m].ndim >= 2 and model != "dummy"
        },
        # what the audio modality was made of: the audio sets, the log-mel tensor (cnn), or nothing
        "audio_sets": (
            [] if "audio" not in wanted or model == "dummy" else ["melspec"] if model == "cnn" else variant.audio_sets
        ),
        "text_representation": params.text.representation if "text" in blocks else None,
        **({"text_sets": list(variant.text_sets)} if variant.text_sets != ("default",) else {}),
        "n_without_text": int((~all_blocks["text_present"]).sum()) if "text" in all_blocks else len(rows),
        "modalities": [m for m in MODALITIES if m in all_blocks],
        "folds": evaluation.per_fold,
        "summary": summarize(evaluation.per_fold),
        "tuning": evaluation.tuning,
        # per-class scores and confusion counts of the first repeat: one prediction per test clip
        **({} if regression else per_class_report(y[test_rows][first_repeat], proba[first_repeat], classes)),
        "params": run_params,
        "dataset": read_metadata(MANIFEST)["params"]["dataset"],
        # wall time of the whole protocol and the stage's peak memory: the only keys
        # that vary between identical runs
        "runtime": {
            "train_seconds": round(evaluation.train_seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
    }


def write_skipped(out_dir: Path, model: str, fusion: str, reason: str, absent: list[str] = ()) -> None:
    """A variant that cannot run here (a modality the corpus lacks, a disabled store): its metrics.json
    says why, and nothing else is written."""
    shutil.rmtree(out_dir, ignore_errors=True)
    absent = list(absent)
    write_json(
        {"model": model, "fusion": fusion, "skipped": reason, "absent_modalities": absent}, out_dir / "metrics.json"
    )
    print(f"train {model}-{fusion}: skipped ({reason})")


def save_fold_models(fitted: list, splits: list, folder: Path) -> None:
    """The fitted learners of the first repeat, one folder per fold (``load_learner`` reads them back)."""
    shutil.rmtree(folder, ignore_errors=True)  # no stale folds from an earlier run with more folds
    for learner, split in zip(fitted, splits):
        if split.repeat == 0:
            learner.save(folder / f"fold{split.fold}")
