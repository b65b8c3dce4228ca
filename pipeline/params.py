"""params.yaml parsed once into typed, frozen objects with clear errors.

Every stage calls :func:`load_params`; an unknown or mistyped key fails before any
work starts, naming the key and the keys that are allowed. A key with a fixed set of
values declares them on its field (``Literal[...]``); :func:`build` checks them.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.executor import DaskSettings
from pipeline.features.audio import AudioFeatureConfig
from pipeline.features.encoders import EncoderConfig, layer_index
from pipeline.features.music import MusicFeatureConfig
from pipeline.features.musicnn import MusicnnConfig
from pipeline.features.text import Dtype, Pooling, TextConfig, TokenPooling
from pipeline.features.text import EncoderKind as TextEncoderKind


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or holds an unknown/mistyped key."""


def narrow(params: Any, config_cls: type) -> Any:
    """The ``config_cls`` part of a params section that extends it (drops stage-only keys)."""
    return config_cls(**{f.name: getattr(params, f.name) for f in fields(config_cls)})


@dataclass(frozen=True)
class DemoParams:
    """The synthetic demo corpus (``dataset.kind: demo``)."""

    n_clips: int = 480
    duration_s: float = 8.0
    sr: int = 22050
    contradiction_rate: float = 0.08


@dataclass(frozen=True)
class DatasetParams:
    """Which corpus ``prepare`` turns into ``data/manifest.parquet``.

    kind: ``demo`` (generated under ``root``), ``manifest`` (a CSV/Parquet file named by
    ``manifest``; ``columns`` maps mmer's column names to the file's), ``merge`` (the
    MERGE release unpacked under ``root``: ``subset`` audio|lyrics|bimodal, ``variant``
    balanced|complete, ``split`` 70_15_15|40_30_30|none) or ``folders`` (``root/<label>/``
    audio files with optional ``.txt``/``.lrc`` sidecars; ``group_regex`` takes the
    group from each file name). root: the folder DVC watches for changes (dvc.yaml's
    ``prepare`` depends on it); every kind but the demo needs its own. labels: the
    allowed labels, in report order; ``None`` takes the sorted labels found.
    targets: the numeric manifest columns ``task: regression`` predicts (the demo and
    MERGE have ``arousal`` and ``valence``; a user manifest's are kept as they are named,
    or renamed with ``columns``); with ``task: regression``, ``prepare`` checks that every
    clip has a finite number.
    target_center: the neutral point of the targets' scale: a prediction's quadrant is the
    signs of ``target - target_center`` (0 for scales in [-1, 1], 0.5 for [0, 1]).
    """

    kind: Literal["demo", "manifest", "merge", "folders"] = "demo"
    root: str = "data/demo"
    manifest: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    labels: list[str] | None = None
    subset: Literal["audio", "lyrics", "bimodal"] = "bimodal"
    variant: Literal["balanced", "complete"] = "balanced"
    split: Literal["70_15_15", "40_30_30", "none"] = "70_15_15"
    group_regex: str | None = None
    targets: list[str] = field(default_factory=lambda: ["arousal", "valence"])
    target_center: float = 0.0


@dataclass(frozen=True)
class ExecutorParams:
    """How per-clip work is mapped.

    kind: ``local`` (``n_jobs`` joblib processes, -1 = all cores) or ``dask`` (the
    workers of a ``dask.distributed`` cluster: ``address`` of a running scheduler, or
    ``local-cluster`` to start ``workers`` single-threaded processes here).
    """

    kind: Literal["local", "dask"] = "local"
    n_jobs: int = -1
    address: str = "local-cluster"
    workers: int = 2

    def dask(self) -> DaskSettings | None:
        """The Dask settings when ``kind`` is ``dask``, else None (local processes)."""
        return DaskSettings(self.address, self.workers) if self.kind == "dask" else None


@dataclass(frozen=True)
class CacheParams:
    """Per-clip result cache (content-addressed; clear it with ``mmer cache clear``)."""

    enabled: bool = True
    dir: str = ".mmer_cache"


@dataclass(frozen=True)
class StoreParams:
    """Layout of the feature stores.

    partitioned: false writes each store as one Parquet file (rows stream through the
    stage's process); true writes a folder of part files at the same path, each
    written by the worker that computed its clips (``rows_per_part`` clips a part).
    """

    partitioned: bool = False
    rows_per_part: int = 256


@dataclass(frozen=True)
class AudioParams(AudioFeatureConfig):
    """Audio extraction settings plus the stage's failure budget."""

    max_error_fraction: float = 0.05

    def feature_config(self) -> AudioFeatureConfig:
        """The extraction config alone (what the store's metadata records)."""
        return narrow(self, AudioFeatureConfig)


@dataclass(frozen=True)
class EssentiaParams(MusicFeatureConfig):
    """Music descriptors (essentia) plus the stage's failure budget."""

    max_error_fraction: float = 0.05

    def feature_config(self) -> MusicFeatureConfig:
        """The extraction config alone (what the store's metadata records)."""
        return narrow(self, MusicFeatureConfig)


@dataclass(frozen=True)
class MusicnnParams(MusicnnConfig):
    """Pretrained musicnn embeddings (features/musicnn.parquet) plus the stage's switch and failure budget."""

    enabled: bool = True
    max_error_fraction: float = 0.05

    def feature_config(self) -> MusicnnConfig:
        """The extraction config alone (what the store's metadata records)."""
        return narrow(self, MusicnnConfig)


@dataclass(frozen=True)
class TextParams(TextConfig):
    """Text embedding settings plus the text representation the learners use.

    representation: ``embedding`` (features/text.parquet) or ``tfidf`` (word 1-2-gram
    TF-IDF reduced by truncated SVD to ``tfidf_dim``, fitted inside each training fold).
    """

    representation: Literal["embedding", "tfidf"] = "embedding"
    tfidf_dim: int = 128

    def feature_config(self) -> TextConfig:
        """The embedding config alone (what the store's metadata records)."""
        return narrow(self, TextConfig)


@dataclass(frozen=True)
class TextEncoderParams:
    """One ``text_encoders.<name>`` entry: one more text store, features/text_<name>.parquet, whose texts
    are cleaned and chunked as ``text`` says (strip_*, lowercase, device) and embedded with this model.

    The learners read it with ``--text-sets <name>`` (the ``train_text_encoders`` stages); ``default``
    names features/text.parquet.
    """

    model: str = ""
    encoder_kind: TextEncoderKind = "transformers"
    token_pooling: TokenPooling = "mean"
    pooling: Pooling = "mean"
    overlap: int = 32
    batch_size: int = 32
    dtype: Dtype = "float32"


@dataclass(frozen=True)
class EvalParams:
    """The evaluation protocol: which clips train, select and test each model.

    scheme: ``cv`` (repeated stratified K-fold, grouped by the manifest's ``group``
    when present), ``fixed`` (the manifest's ``split`` column: ``train``,
    ``validate``, ``test``; fit on train, select on validate, score test once) or
    ``predefined`` (the manifest's ``fold`` column: each fold is the test fold once).
    val_fraction: share of each training fold carved off (stratified, grouped) as the
    inner validation split for early stopping and late-fusion weights (cv; fixed
    without ``validate`` rows). n_boot: bootstrap resamples of the CIs and paired tests.
    """

    scheme: Literal["cv", "fixed", "predefined"] = "cv"
    n_folds: int = 5
    n_repeats: int = 1
    val_fraction: float = 0.15
    n_boot: int = 1000


@dataclass(frozen=True)
class MLPParams:
    """Small torch fusion head: per-modality encoder (Linear, LayerNorm, ReLU, Dropout) -> fusion -> classifier.

    grad_clip: max gradient norm (0 = no clipping). lr_step: multiply the learning
    rate by 0.5 every ``lr_step`` epochs (0 = constant).
    """

    hidden: int = 64
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 20
    grad_clip: float = 1.0
    lr_step: int = 0


@dataclass(frozen=True)
class MultitaskParams(MLPParams):
    """The mlp's encoders with three heads (fused, audio-only, text-only), trained on a weighted loss sum.

    loss_weights: weights of the fused, audio and text heads' losses; predictions come
    from the fused head.
    """

    loss_weights: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.5])


@dataclass(frozen=True)
class CNNParams(MLPParams):
    """Seed CNN on the log-mel store: 2 x (Conv 32@4x4 stride 2, ReLU, MaxPool 2x2), global pooling.

    Adam (``weight_decay`` 0) with the learning rate halved every ``lr_step`` epochs;
    the epoch with the lowest inner-validation loss is kept. time_pool: average this many
    consecutive log-mel frames before the first convolution (1 = none; 4 = 4x cheaper).
    """

    time_pool: int = 4
    hidden: int = 32
    dropout: float = 0.2
    weight_decay: float = 0.0
    max_epochs: int = 30
    patience: int = 10
    lr_step: int = 10


@dataclass(frozen=True)
class LGBMParams:
    """LightGBM classifier settings (passed to ``lightgbm.LGBMClassifier``).

    early_stopping_rounds: > 0: fit on the training rows of each fold, score the
    multi-class log-loss of the inner validation rows after every tree, and keep the
    trees up to the best score once ``early_stopping_rounds`` trees in a row have not
    improved it (``n_estimators`` is then the most trees). 0: no early stopping; the
    validation rows are training rows.

    distributed: train each booster data-parallel with ``lightgbm.dask`` on the
    executor's cluster (needs ``executor.kind: dask``), the rows in ``n_partitions``
    stratified parts on as many workers; the trees differ from a local fit's and depend
    on ``n_partitions``, which is why both are training parameters.
    """

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 10
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    early_stopping_rounds: int = 30
    distributed: bool = False
    n_partitions: int = 2


@dataclass(frozen=True)
class LogRegParams:
    """Multinomial logistic regression (``sklearn.linear_model.LogisticRegression``); under ``task:
    regression`` the same recipe ends in ridge regression (``sklearn.linear_model.Ridge``) with penalty ``alpha``."""

    C: float = 0.1
    max_iter: int = 2000
    alpha: float = 100.0


@dataclass(frozen=True)
class TrainParams:
    """Learner settings.

    audio_sets: which audio stores form the audio modality of the vector learners,
    concatenated per clip: ``descriptors`` (features/audio.parquet), ``essentia``
    (features/essentia.parquet), ``musicnn`` (the 1,506 pooled mid-end features of
    features/musicnn.parquet), ``musicnn_penultimate`` (its 200-d penultimate layer),
    ``musicnn_tags`` (its 50 tag probabilities); the cnn reads features/melspec.parquet.
    pca_dim: width ``h`` each modality is projected to (PCA, fitted inside the
    training fold) before the elementwise ``product``/``mean`` fusions of the
    classical learners. class_weight: ``null`` or ``balanced`` (weights inversely
    proportional to class frequency, for every learner but dummy). n_threads: torch
    and LightGBM threads (fixed, so that results are reproducible). normalize: ``global``
    standardises every feature with the training rows' statistics inside each learner;
    ``group`` first z-scores the audio block (and the text block with ``normalize_text``)
    per manifest group with that group's own clips' statistics (features only, no labels;
    a test group's come from its unlabeled test clips), groups under
    ``normalize_min_clips`` clips taking the training rows' statistics; ``none`` leaves
    the features as they are. regression_loss: ``task: regression`` trains the torch heads on
    ``mse`` or ``ccc`` (1 - mean concordance correlation over the targets, the usual choice
    in dimensional emotion recognition); early stopping watches the same loss.
    """

    audio_sets: list[str] = field(default_factory=lambda: ["descriptors"])
    pca_dim: int = 32
    normalize: Literal["none", "global", "group"] = "global"
    normalize_min_clips: int = 5
    normalize_text: bool = False
    class_weight: Literal["balanced"] | None = None
    regression_loss: Literal["mse", "ccc"] = "ccc"
    n_threads: int = 2
    mlp: MLPParams = field(default_factory=MLPParams)
    multitask: MultitaskParams = field(default_factory=MultitaskParams)
    cnn: CNNParams = field(default_factory=CNNParams)
    lgbm: LGBMParams = field(default_factory=LGBMParams)
    logreg: LogRegParams = field(default_factory=LogRegParams)


@dataclass(frozen=True)
class SearchRange:
    """One hyper-parameter's search range: ``low``..``high`` (log-uniform with ``log``), or ``choices``.

    Integer hyper-parameters (those whose default in ``train`` is an int) draw integers.
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[float] | None = None


def _ranges(**ranges: dict) -> Any:
    """A default factory of a learner's search space."""
    return lambda: {key: SearchRange(**r) for key, r in ranges.items()}


HEAD_SPACE = {  # the mlp's and multitask head's default search space
    "hidden": {"choices": [32, 64, 128]},
    "dropout": {"low": 0.0, "high": 0.5},
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "weight_decay": {"low": 1e-4, "high": 1e-1, "log": True},
}


@dataclass(frozen=True)
class SearchSpaces:
    """Per learner: the ``train.<learner>`` keys to tune (and ``pca_dim`` for logreg/lgbm), each a range."""

    logreg: dict[str, SearchRange] = field(
        default_factory=_ranges(C={"low": 1e-3, "high": 1e2, "log": True}, pca_dim={"choices": [8, 16, 32]})
    )
    lgbm: dict[str, SearchRange] = field(
        default_factory=_ranges(
            num_leaves={"low": 4, "high": 31, "log": True},
            learning_rate={"low": 0.03, "high": 0.3, "log": True},
            min_child_samples={"low": 5, "high": 40},
            colsample_bytree={"low": 0.2, "high": 0.8},
            n_estimators={"low": 100, "high": 400},
            pca_dim={"choices": [8, 16, 32]},
        )
    )
    mlp: dict[str, SearchRange] = field(default_factory=_ranges(**HEAD_SPACE))
    multitask: dict[str, SearchRange] = field(default_factory=_ranges(**HEAD_SPACE))
    cnn: dict[str, SearchRange] = field(
        default_factory=_ranges(lr={"low": 3e-4, "high": 3e-3, "log": True}, dropout={"low": 0.0, "high": 0.5})
    )


@dataclass(frozen=True)
class TuneParams:
    """Nested hyper-parameter search (optuna) inside each outer training fold.

    enabled: tune every learner but the dummy (off: the values of ``train``). n_trials:
    trials per outer fold. sampler: ``tpe`` | ``random`` | ``grid`` (``grid_points``
    values per range, log-spaced with ``log``), seeded from ``seed``. timeout_s: a
    variant's budget, split evenly over its outer folds (null = none; a timeout makes
    the number of trials, and so the result, depend on the machine). metric: what the
    trials maximise. inner_folds: logreg and lgbm trials are scored by grouped,
    stratified K-fold cross-validation (>= 2) on the outer fold's training + validation
    rows, or (1) on the protocol's inner validation split alone; inner_folds_torch: the
    same for the torch heads (mlp, multitask, cnn), default 1: each trial trains a
    network. The configured ``train`` values are always the first trial. space: per learner.
    """

    enabled: bool = False
    n_trials: int = 20
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    timeout_s: float | None = None
    metric: Literal["f1_macro", "auc_roc_macro", "balanced_accuracy", "accuracy"] = "f1_macro"
    inner_folds: int = 3
    inner_folds_torch: int = 1
    grid_points: int = 3
    space: SearchSpaces = field(default_factory=SearchSpaces)


@dataclass(frozen=True)
class BundleParams:
    """Final models for ``mmer predict`` (stage ``bundle``, models/bundles/<variant>/).

    variants: variant names as in models/ (``lgbm-concat``, ``mlp@musicnn-audio``), or
    ``best``: rank 1 of the leaderboard. Each is refitted on every labelled clip; ``[]``
    writes none.
    """

    variants: list[str] = field(default_factory=lambda: ["best"])


@dataclass(frozen=True)
class Params:
    """All of params.yaml.

    task: ``classification`` (``dataset.labels``) or ``regression`` (``dataset.targets``,
    e.g. arousal and valence), from the same feature stores.
    """

    seed: int = 42
    task: Literal["classification", "regression"] = "classification"
    dataset: DatasetParams = field(default_factory=DatasetParams)
    demo: DemoParams = field(default_factory=DemoParams)
    executor: ExecutorParams = field(default_factory=ExecutorParams)
    cache: CacheParams = field(default_factory=CacheParams)
    store: StoreParams = field(default_factory=StoreParams)
    audio: AudioParams = field(default_factory=AudioParams)
    essentia: EssentiaParams = field(default_factory=EssentiaParams)
    musicnn: MusicnnParams = field(default_factory=MusicnnParams)
    text: TextParams = field(default_factory=TextParams)
    eval: EvalParams = field(default_factory=EvalParams)
    train: TrainParams = field(default_factory=TrainParams)
    tune: TuneParams = field(default_factory=TuneParams)
    bundle: BundleParams = field(default_factory=BundleParams)
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)
    text_encoders: dict[str, TextEncoderParams] = field(default_factory=dict)

    def text_encoder_config(self, name: str) -> TextConfig:
        """The embedding config of text store ``name``: ``default`` is ``text``'s own; another name takes
        ``text``'s cleaning and device with its ``text_encoders`` entry's model settings."""
        if name == "default":
            return self.text.feature_config()
        return dataclasses.replace(self.text.feature_config(), **dataclasses.asdict(self.text_encoders[name]))


def _choices(values: tuple, nullable: bool) -> str:
    """``null, 'a' or 'b'``: the allowed values of a ``Literal`` field, as params.yaml spells them."""
    names = (["null"] if nullable else []) + [repr(v) for v in values]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the type hint ``hint`` (and converted: int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    nullable = False
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        nullable = type(None) in args
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # e.g. ``str | list[int]``: the first type the value fits
            for option in options[:-1]:
                try:
                    return _check_value(value, option, key)
                except ParamsError:
                    pass
        hint = options[-1]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        _check_value(value, type(args[0]), key)  # a YAML number where a name is expected: say so first
        if value not in args:
            raise ParamsError(f"params: {key} must be {_choices(args, nullable)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = origin or hint
    if expected is tuple and isinstance(value, list):  # YAML has lists, frozen params hold tuples
        value = tuple(value)
    if expected is bool or expected is int:
        ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
    else:
        ok = isinstance(value, expected)
    if not ok:
        hint = "; quote it (YAML reads e.g. 70_15_15 as the number 701515)" if expected is str else ""
        raise ParamsError(f"params: '{key}' must be {getattr(expected, '__name__', expected)}, got {value!r}{hint}")
    if origin is list:
        return [_check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return tuple(_check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        return {str(k): _check_value(v, args[1], f"{key}.{k}") for k, v in value.items()}
    return value


def build(cls: type, data: dict | None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad types."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParamsError(f"params: '{prefix or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f"'{prefix}.{unknown[0]}'" if prefix else f"'{unknown[0]}'"
        raise ParamsError(f"params: unknown key {where}; known keys here: {', '.join(known)}")
    values = {
        name: _check_value(data[name], hints[name], f"{prefix}.{name}" if prefix else name)
        for name in known
        if name in data
    }
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; missing keys take the documented defaults."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: file not found; run from the project root or pass --params PATH")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        params = build(Params, data)
    except ParamsError:
        raise
    except ValueError as exc:  # a config's own check, e.g. audio.stats
        raise ParamsError(f"params: {exc}") from exc
    validate(params)
    return params


def validate(params: Params) -> None:
    """Ranges and cross-field checks that the types alone cannot express."""
    if params.dataset.kind == "manifest" and not params.dataset.manifest:
        raise ParamsError("params: dataset.kind 'manifest' needs dataset.manifest: PATH (a CSV or Parquet file)")
    if params.dataset.kind != "demo" and params.dataset.root == DatasetParams.root:  # the folder DVC watches
        raise ParamsError(
            f"params: dataset.kind {params.dataset.kind!r} needs dataset.root: the folder holding your corpus "
            f"(not the demo's {DatasetParams.root})"
        )
    ds = params.dataset
    if ds.group_regex is not None:
        try:
            re.compile(ds.group_regex)
        except re.error as exc:
            raise ParamsError(f"params: dataset.group_regex is not a valid regular expression: {exc}") from exc
    ev = params.eval
    if ev.n_folds < 2:
        raise ParamsError(f"params: eval.n_folds must be >= 2, got {ev.n_folds}")
    if ev.n_repeats < 1:
        raise ParamsError(f"params: eval.n_repeats must be >= 1, got {ev.n_repeats}")
    if ev.scheme != "cv" and ev.n_repeats != 1:
        raise ParamsError(
            f"params: eval.n_repeats applies to scheme 'cv'; scheme {ev.scheme!r} is scored once (set it to 1)"
        )
    if ev.n_boot < 100:
        raise ParamsError(f"params: eval.n_boot must be >= 100 bootstrap resamples, got {ev.n_boot}")
    if not 0 < ev.val_fraction < 0.5:
        raise ParamsError(f"params: eval.val_fraction must be in (0, 0.5), got {ev.val_fraction}")
    if len(params.train.multitask.loss_weights) != 3 or min(params.train.multitask.loss_weights) < 0:
        raise ParamsError("params: train.multitask.loss_weights must be 3 non-negative numbers (fused, audio, text)")
    ex = params.executor
    if ex.workers < 1:
        raise ParamsError(f"params: executor.workers must be >= 1, got {ex.workers}")
    if ex.kind == "dask" and ex.address != "local-cluster" and "://" not in ex.address:
        raise ParamsError(
            f"params: executor.address must be 'local-cluster' or a scheduler address like tcp://host:8786, "
            f"got {ex.address!r}"
        )
    if params.train.lgbm.distributed and ex.kind != "dask":
        raise ParamsError("params: train.lgbm.distributed needs executor.kind: dask (the cluster to train on)")
    lgbm = params.train.lgbm
    if lgbm.distributed and ex.address == "local-cluster" and ex.workers < lgbm.n_partitions:
        raise ParamsError(
            f"params: train.lgbm.n_partitions {lgbm.n_partitions} needs as many workers; "
            f"executor.workers is {ex.workers}"
        )
    if lgbm.n_partitions < 1:
        raise ParamsError(f"params: train.lgbm.n_partitions must be >= 1, got {lgbm.n_partitions}")
    if params.train.cnn.time_pool < 1:
        raise ParamsError(f"params: train.cnn.time_pool must be >= 1, got {params.train.cnn.time_pool}")
    if lgbm.early_stopping_rounds < 0:
        raise ParamsError(f"params: train.lgbm.early_stopping_rounds must be >= 0, got {lgbm.early_stopping_rounds}")
    if lgbm.distributed and lgbm.early_stopping_rounds:
        raise ParamsError(
            "params: train.lgbm.distributed does not early-stop; set train.lgbm.early_stopping_rounds: 0 "
            "(or train.lgbm.distributed: false)"
        )
    if not 1 <= params.store.rows_per_part <= 1_000_000:
        raise ParamsError(f"params: store.rows_per_part must be in [1, 1000000], got {params.store.rows_per_part}")
    for section in ("audio", "essentia", "musicnn"):
        if not 0 <= getattr(params, section).max_error_fraction <= 1:
            raise ParamsError(f"params: {section}.max_error_fraction must be in [0, 1]")
    check_audio_sets(params, params.train.audio_sets, "train.audio_sets")
    check_tune(params.tune, params.train)
    if params.task == "regression":
        if not ds.targets:
            raise ParamsError("params: task 'regression' needs dataset.targets: the manifest columns to predict")
        if params.tune.enabled:
            raise ParamsError("params: tune.enabled searches classification metrics; set it to false for regression")
        if params.train.class_weight is not None:
            raise ParamsError("params: train.class_weight applies to classification; set it to null for regression")
        if params.train.lgbm.distributed:
            raise ParamsError("params: train.lgbm.distributed trains classifiers; set it to false for regression")
    if len(set(ds.targets)) != len(ds.targets):
        raise ParamsError(f"params: dataset.targets repeats a column: {ds.targets}")
    if params.train.normalize_min_clips < 2:
        raise ParamsError(f"params: train.normalize_min_clips must be >= 2, got {params.train.normalize_min_clips}")
    for name, encoder in params.encoders.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in AUDIO_SETS:
            raise ParamsError(
                f"params: encoders.{name}: a name is lower-case letters, digits and _ (it names files and DVC "
                f"stages), not one of {list(AUDIO_SETS)}"
            )
        if encoder.prompts and params.task != "classification":
            raise ParamsError(f"params: encoders.{name}.prompts score labels; task {params.task!r} has none")
    for name, entry in params.text_encoders.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in (*AUDIO_SETS, "default") or name in params.encoders:
            raise ParamsError(
                f"params: text_encoders.{name}: a name is lower-case letters, digits and _, not 'default', an "
                "audio set or an encoders name (it names files, DVC stages and variants)"
            )
        if not entry.model:
            raise ParamsError(f"params: text_encoders.{name} needs model: a hub name or a local folder")


def check_tune(tune: TuneParams, train: TrainParams) -> None:
    """Trial counts, and every ``tune.space`` entry names a key of its learner with a usable range."""
    for key in ("n_trials", "inner_folds", "inner_folds_torch"):
        if getattr(tune, key) < 1:
            raise ParamsError(f"params: tune.{key} must be >= 1, got {getattr(tune, key)}")
    if tune.grid_points < 2:
        raise ParamsError(f"params: tune.grid_points must be >= 2, got {tune.grid_points}")
    if tune.timeout_s is not None and tune.timeout_s <= 0:
        raise ParamsError(f"params: tune.timeout_s must be > 0 seconds or null, got {tune.timeout_s}")
    for learner in (f.name for f in fields(SearchSpaces)):
        section = getattr(train, learner)
        allowed = [f.name for f in fields(section)] + (["pca_dim"] if learner in ("logreg", "lgbm") else [])
        for key, r in getattr(tune.space, learner).items():
            where = f"tune.space.{learner}.{key}"
            if key not in allowed:
                raise ParamsError(f"params: {where}: train.{learner} has no key {key!r}; tunable: {', '.join(allowed)}")
            has_range = r.low is not None and r.high is not None
            if has_range == (r.choices is not None) or (r.choices is not None and (r.low, r.high) != (None, None)):
                raise ParamsError(f"params: {where} needs either low and high, or choices")
            if r.choices is not None and not r.choices:
                raise ParamsError(f"params: {where}.choices is empty")
            if r.choices is None and not r.low < r.high:
                raise ParamsError(f"params: {where} needs low < high, got {r.low} and {r.high}")
            if r.log and (r.choices is not None or r.low <= 0):
                raise ParamsError(f"params: {where}: log needs a range with low > 0")


AUDIO_SETS = ("descriptors", "essentia", "musicnn", "musicnn_penultimate", "musicnn_tags")


def parse_encoder_set(spec: str) -> tuple[str, str] | None:
    """``enc:<name>[:<layers>]`` -> ``(name, layers)`` (``""`` when not given); any other set name -> None."""
    if not spec.startswith("enc:"):
        return None
    name, _, layers = spec[4:].partition(":")
    return name, layers


def check_audio_sets(params: Params, audio_sets: list[str], where: str, require_enabled: bool = True) -> None:
    """``audio_sets`` names known stores, without repeats, each enabled (when ``require_enabled``).

    ``enc:<name>[:avg|:all|:L<k>|:emb]`` names an ``encoders`` store; the shared train stages
    (``require_enabled``: train.audio_sets) do not read those: the ``train_encoders`` stages do.
    """
    encoder_sets = [s for s in audio_sets if parse_encoder_set(s)]
    unknown = sorted(set(audio_sets) - set(AUDIO_SETS) - set(encoder_sets))
    if unknown or not audio_sets or len(set(audio_sets)) != len(audio_sets):
        raise ParamsError(
            f"params: {where} must be a non-empty list of distinct names from {list(AUDIO_SETS)} "
            f"or enc:<encoder>[:avg|:all|:L<k>], got {list(audio_sets)}"
        )
    for spec in encoder_sets:
        name, layers = parse_encoder_set(spec)
        if name not in params.encoders:
            raise ParamsError(
                f"params: {where}: {spec} names encoder {name!r}, which encoders: does not define "
                f"(defined: {sorted(params.encoders) or 'none'})"
            )
        if layers not in ("", "avg", "all", "emb") and layer_index(layers) is None:
            raise ParamsError(f"params: {where}: {spec}: the layers part must be avg, all, emb or L<k> (e.g. L6)")
    if not require_enabled:
        return
    if encoder_sets:
        raise ParamsError(
            f"params: {where}: {encoder_sets}: encoder stores are read by the train_encoders stages "
            "(models/enc/<learner>@<encoder>-<fusion>) or `mmer train --audio-sets enc:<name>`, not by the shared "
            "train stages"
        )
    if "essentia" in audio_sets and not params.essentia.enabled:
        raise ParamsError(f"params: {where} names essentia but essentia.enabled is false")
    if any(s.startswith("musicnn") for s in audio_sets) and not params.musicnn.enabled:
        raise ParamsError(f"params: {where} names a musicnn set but musicnn.enabled is false")


def check_text_sets(params: Params, text_sets: list[str], where: str) -> None:
    """``text_sets`` names ``default`` (features/text.parquet) or ``text_encoders`` entries, without repeats."""
    known = ["default", *params.text_encoders]
    unknown = [s for s in text_sets if s not in known]
    if unknown or not text_sets or len(set(text_sets)) != len(text_sets):
        raise ParamsError(f"params: {where} must be a non-empty list of distinct names from {known}, got {text_sets}")
    if params.text.representation == "tfidf" and list(text_sets) != ["default"]:
        raise ParamsError(f"params: {where}: text stores are embeddings; text.representation tfidf reads raw texts")


def as_dict(obj: Any) -> dict:
    """A params object as a plain dict (for store metadata)."""
    return dataclasses.asdict(obj)
