"""The ``mmer`` command: one sub-command per DVC stage, plus ``inspect``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.fusion import FUSIONS
from pipeline.models import LEARNERS, ZERO_SHOT

if TYPE_CHECKING:
    from pipeline.params import Params


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmer`` console script."""
    parser = argparse.ArgumentParser(prog="mmer", description="Multimodal (audio + text) emotion recognition pipeline.")
    parser.add_argument("--version", action="version", version=f"mmer {__version__}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="generate the synthetic demo corpus (stage demo_corpus)")
    sub.add_parser("prepare", help="validate the dataset and write data/manifest.parquet")
    sub.add_parser("audio-features", help="extract clip-level audio descriptors")
    sub.add_parser("essentia-features", help="extract music descriptors with essentia")
    sub.add_parser("musicnn-features", help="embed clips with the pretrained musicnn tagger (PyTorch port)")
    texts = sub.add_parser("text-features", help="embed clip texts")
    texts.add_argument("--name", default="default", help="a text_encoders entry (default: the text section's model)")
    sub.add_parser("encoders", help="check every params.yaml encoder is here -> models/enc/encoders.json")
    encoder = sub.add_parser("encoder-features", help="embed clips with one params.yaml encoder (transformers)")
    encoder.add_argument("--name", required=True, help="the encoder's key under encoders: in params.yaml")
    train = sub.add_parser("train", help="evaluate one learner x fusion variant (eval.scheme: cv, fixed or predefined)")
    train.add_argument("--model", required=True, choices=(*LEARNERS, ZERO_SHOT))
    train.add_argument("--fusion", required=True, choices=(*FUSIONS, "none"), help="'none' for the dummy learner")
    train.add_argument(
        "--audio-sets",
        nargs="+",
        metavar="SET",
        help="audio stores of this variant instead of train.audio_sets (written to models/<model>@<sets>-<fusion>)",
    )
    train.add_argument(
        "--text-sets",
        nargs="+",
        metavar="SET",
        help="text stores side by side: default and/or text_encoders names (-> models/enc/<model>@<sets>-<fusion>)",
    )
    sub.add_parser("report", help="aggregate metrics into reports/")
    sub.add_parser("bundle", help="refit bundle.variants on all labelled clips -> models/bundles/ (for predict)")
    predict = sub.add_parser("predict", help="predict new clips with a bundle; exit code 2 when some clips failed")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, or a .csv/.parquet manifest")
    predict.add_argument("--bundle", required=True, help="a bundle folder, e.g. models/bundles/lgbm-concat")
    predict.add_argument("--out", required=True, help="predictions file: .parquet, .csv or .jsonl")
    predict.add_argument("--jobs", type=int, default=-1, help="worker processes for feature extraction (-1: all cores)")
    predict.add_argument(
        "--dask", metavar="ADDRESS", help="extract on a Dask cluster (tcp://host:8786 or local-cluster)"
    )
    predict.add_argument(
        "--column", action="append", default=[], metavar="MMER=YOURS", help="manifest column mapping, e.g. clip_id=id"
    )
    predict.add_argument("--no-cache", action="store_true", help="do not read or fill the per-clip feature cache")
    predict.add_argument("--window", type=float, metavar="S", help="also predict windows of S seconds of each song")
    predict.add_argument("--hop", type=float, metavar="S", help="seconds between window starts (default: --window)")
    predict.add_argument("--plots", metavar="DIR", help="with --window: one SVG per song, probabilities over time")
    inspect = sub.add_parser("inspect", help="show a store's schema, null counts and metadata")
    inspect.add_argument("path")
    fetch = sub.add_parser("fetch", help="download a dataset's release archives (checksummed, resumable)")
    fetch.add_argument("dataset", choices=["merge"])
    fetch.add_argument("--dest", required=True, help="folder to download and unpack into (then dataset.root)")
    fetch.add_argument(
        "--archive", action="append", help="archive name(s); default: the one of dataset.subset / dataset.variant"
    )
    fetch.add_argument("--record-url", default=None, help="Zenodo record API URL (default: MERGE's record)")
    fetch.add_argument("--no-extract", action="store_true", help="keep the .zip files packed")
    cache = sub.add_parser("cache", help="manage the per-clip feature cache")
    cache.add_argument("action", choices=["clear"])
    args = parser.parse_args(argv)

    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"mmer {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    return COMMANDS[args.command](args) or 0


def _params(args: argparse.Namespace) -> Params:
    from pipeline.params import load_params

    return load_params(args.params)


def _inspect(args: argparse.Namespace) -> None:
    from pipeline.inspect_store import describe

    print(describe(args.path))


def _report(args: argparse.Namespace) -> None:
    from pipeline.stages import report

    report.run(args.params)


def _demo(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import demo_corpus

    demo_corpus.run(params)


def _prepare(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import prepare

    prepare.run(params)


def _audio_features(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import audio_features

    audio_features.run(params)


def _essentia_features(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import essentia_features

    essentia_features.run(params)


def _encoders(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import encoder_features

    encoder_features.run_index(params)


def _encoder_features(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import encoder_features

    encoder_features.run(params, args.name)


def _musicnn_features(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import musicnn_features

    musicnn_features.run(params)


def _text_features(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import text_features

    text_features.run(params, args.name)


def _train(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import train

    train.run(params, args.model, args.fusion, args.audio_sets, args.text_sets)


def _bundle(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.stages import bundle

    bundle.run(params)


def _predict(args: argparse.Namespace) -> int:
    import json

    from pipeline.predict import predict, write_table
    from pipeline.store import write_text

    columns = dict(item.split("=", 1) for item in args.column if "=" in item)
    if len(columns) != len(args.column):
        raise ValueError(f"--column takes MMER=YOURS, e.g. clip_id=id; got {args.column}")
    if (args.hop is not None or args.plots) and not args.window:
        raise ValueError("--hop and --plots go with --window SECONDS")
    if args.window is not None and (args.window <= 0 or (args.hop is not None and args.hop <= 0)):
        raise ValueError(f"--window and --hop must be > 0 seconds, got {args.window} and {args.hop}")
    table, metrics = predict(
        args.bundle,
        args.inputs,
        columns=columns,
        jobs=args.jobs,
        dask_address=args.dask,
        cache_dir=None if args.no_cache else ".mmer_cache",
    )
    write_table(table, args.out)
    if args.window:
        _predict_windows(args, table)
    failed = int(table["error"].notna().sum())
    if "predicted" in table:
        counts = table["predicted"].value_counts().sort_index()
        predicted = ", ".join(f"{k} {v}" for k, v in counts.items())
    else:  # a regression bundle: the mean of each predicted target
        predicted = ", ".join(
            f"mean {c.removeprefix('pred_')} {table[c].mean():.3f}" for c in table if c[:5] == "pred_"
        )
    print(f"mmer predict: {len(table)} clips -> {args.out}; predicted {predicted}")
    path = Path(args.out).with_suffix(".metrics.json")
    path.unlink(missing_ok=True)  # no stale metrics of an earlier, labelled run beside these predictions
    if metrics is not None:
        write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", path)
        score, name = ("ccc_mean", "mean CCC") if "ccc_mean" in metrics else ("f1_macro", "macro-F1")
        low, high = metrics[f"{score}_ci95"]
        extra = "" if score == "ccc_mean" else f", accuracy {metrics['accuracy']:.3f}"
        print(
            f"mmer predict: labelled: {name} {metrics[f'{score}_pooled']:.3f} (95% CI {low:.3f}-{high:.3f}){extra} "
            f"on {metrics['n_clips']} clips -> {path}"
        )
    if failed:
        first = table.loc[table["error"].notna()].iloc[0]
        print(
            f"mmer predict: {failed} clip(s) failed, e.g. {first['clip_id']}: {first['error']} (see the error column)"
        )
        return 2
    return 0


def _predict_windows(args: argparse.Namespace, table) -> None:
    """``--window``: <out stem>_windows.parquet and, with ``--plots``, one SVG per song."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.predict import collect_inputs, predict_windows, windows_svg
    from pipeline.store import atomic_path, write_text

    columns = dict(item.split("=", 1) for item in args.column)
    texts = collect_inputs(args.inputs, columns).set_index("clip_id")["text"].to_dict()  # sidecars: cheap to reread
    windows = predict_windows(args.bundle, table, texts, args.window, args.hop or args.window, jobs=args.jobs)
    out = Path(args.out)
    path = out.with_name(f"{out.stem}_windows.parquet")
    note = {"mmer": '{"text": "each window gets its song\'s whole text: the lyrics carry no timing"}'}
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(windows, preserve_index=False).replace_schema_metadata(note), tmp)
    print(f"mmer predict: {len(windows)} windows of {args.window:g} s -> {path} (each with its song's whole text)")
    if args.plots:
        for song, rows in windows.dropna(subset=[c for c in windows if c.startswith(("proba_", "pred_"))]).groupby(
            "clip_id"
        ):
            name = song.replace("/", "__")
            write_text(windows_svg(rows, song), Path(args.plots) / f"{name}.svg")


def _fetch(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.datasets.fetch import MERGE_RECORD, fetch_archives, merge_archive

    names = args.archive or [merge_archive(params.dataset.subset, params.dataset.variant)]
    paths = fetch_archives(args.dest, names, args.record_url or MERGE_RECORD, extract=not args.no_extract)
    print(f"mmer fetch: {', '.join(str(p) for p in paths)} verified" + ("" if args.no_extract else " and unpacked"))
    print(f"set dataset.kind: merge and dataset.root: {args.dest} in params.yaml, then `dvc repro`")


def _cache(args: argparse.Namespace) -> None:
    params = _params(args)
    from pipeline.executor import clear_cache

    removed = clear_cache(params.cache.dir)
    print(f"mmer cache: removed {removed} cached clip results from {params.cache.dir}")


# sub-command -> what it runs; each imports its stage when called, so ``mmer --help`` stays fast
COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "demo": _demo,
    "prepare": _prepare,
    "audio-features": _audio_features,
    "essentia-features": _essentia_features,
    "musicnn-features": _musicnn_features,
    "text-features": _text_features,
    "encoders": _encoders,
    "encoder-features": _encoder_features,
    "train": _train,
    "report": _report,
    "bundle": _bundle,
    "predict": _predict,
    "inspect": _inspect,
    "fetch": _fetch,
    "cache": _cache,
}


if __name__ == "__main__":
    sys.exit(main())
