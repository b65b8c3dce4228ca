"""Render bench/README.md from the measured results in bench/results/*.json.

    python bench/render_readme.py           # rewrite bench/README.md (atomically)
    python bench/render_readme.py --check   # exit 1 when bench/README.md is not what the results give

Every number on the page comes from a JSON file; what each benchmark measures, how to
run it and its targets live in ``BENCHES`` below. Table cells are ``str.format``
templates over the benchmark's JSON (``"{clips_per_s:.1f} clips/s"``), so a figure is
never typed twice. A result without an entry in ``BENCHES`` is rendered as a plain
key/value table, so a new benchmark shows up before anyone describes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
MACHINE = "2 cores, AMD EPYC"  # where the committed results were measured (the JSON files do not say)

Result = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A goal for one result key, shown in a table's target column with whether it was met."""

    key: str
    op: str  # ">=" or "<"
    bound: float
    shown: str = ""  # how to write the bound, e.g. "1 GB"; default: the number

    def cell(self, result: Result) -> str:
        value = result[self.key]
        met = value >= self.bound if self.op == ">=" else value < self.bound
        sign = "≥" if self.op == ">=" else "<"
        return f"{sign} {self.shown or f'{self.bound:g}'} ({'met' if met else 'missed'})"


Cell = str | Target
Rows = Callable[[Result], list[list[str]]]


def table(*rows: tuple[Cell, ...]) -> Rows:
    """Rows whose cells are format templates over the result (or targets)."""
    return lambda result: [
        [cell.format(**result) if isinstance(cell, str) else cell.cell(result) for cell in row] for row in rows
    ]


def scaling_rows(result: Result) -> list[list[str]]:
    """bench/scaling.py: every executor x workers x store layout, the fastest in bold."""
    rows = []
    for kind, name in (("local", "local"), ("dask", "Dask LocalCluster")):
        for workers in (1, 2):
            for layout, suffix in (("single file", ""), ("partitioned", "_partitioned")):
                key = f"{kind}_{workers}_workers{suffix}"
                label = f"{name}, {workers} worker{'s' if workers > 1 else ''}"
                baseline = key == "local_1_workers"
                rows.append(
                    [
                        label + (" (baseline)" if baseline else ""),
                        layout,
                        f"{result[f'{key}_clips_per_s']:.1f}",
                        f"{result[f'{key}_vs_local_1']:.2f}",
                    ]
                )
    best = max(range(len(rows)), key=lambda i: float(rows[i][3]))
    rows[best][2:] = [f"**{cell}**" for cell in rows[best][2:]]
    return rows


def merge_rows(result: Result) -> list[list[str]]:
    """bench/merge_scale.py: seconds per stage, train stages summed per learner."""
    rows, train = [], {}
    for stage, seconds in result["stage_s"].items():
        if stage.startswith("train "):
            learner = stage.removeprefix("train ").split("-")[0]
            count, total = train.get(learner, (0, 0.0))
            train[learner] = (count + 1, total + seconds)
        elif stage != "report":
            rows.append([stage, f"{seconds:,.1f}"])
    if "musicnn_features" not in result["stage_s"]:
        rows.append(["musicnn_features", "not timed: this result predates the stage"])
    for learner, (count, total) in train.items():
        rows.append([f"train: {learner} × {count} variant{'s' if count > 1 else ''}", f"{total:,.1f}"])
    if "report" in result["stage_s"]:
        rows.append(["report", f"{result['stage_s']['report']:,.1f}"])
    total = result["total_s"]
    rows.append(["**total**", f"**{total:,.0f}** (≈ {total / 60:.0f} min)"])
    return rows


def tuning_rows(result: Result) -> list[list[str]]:
    """bench/tuning.py: per corpus and variant, untuned against tuned (and global against group normalisation)."""
    rows = []
    for corpus, name in (("demo", "demo"), ("ravdess", "RAVDESS")):
        for key in sorted(
            k.removesuffix("_tuned_f1") for k in result if k.startswith(corpus) and k.endswith("_tuned_f1")
        ):
            variant = key.removeprefix(f"{corpus}_").replace("_", "-")
            f1, tuned = result[f"{key}_f1"], result[f"{key}_tuned_f1"]
            group = result.get(f"{key}_group_f1")
            rows.append(
                [
                    f"{name} {variant}",
                    f"{f1:.3f}",
                    f"{tuned:.3f} ({tuned - f1:+.3f})",
                    f"{result[f'{key}_s']:.0f} s → {result[f'{key}_tuned_s'] / 60:.1f} min",
                    "–" if group is None else f"{group:.3f} ({group - f1:+.3f})",
                ]
            )
    return rows


DETERMINISM_OUTPUTS = ("audio", "melspec", "musicnn", "text", "logreg-concat", "lgbm-concat", "mlp-concat", "cnn-audio")


def determinism_rows(result: Result) -> list[list[str]]:
    """bench/determinism.py: per environment, each output identical to the baseline run or its largest deviation."""
    environments = [k.removesuffix("_seconds") for k in result if k.endswith("_seconds") and k != "baseline_seconds"]
    rows = []
    for env in environments:
        cells = [result[f"{env}:{out}"] for out in DETERMINISM_OUTPUTS]
        rows.append([f"`{env}`", *("identical" if v == 0 else f"{v:.1e}" for v in cells)])
    return rows


@dataclass(frozen=True)
class Bench:
    """What a benchmark measures and how its JSON becomes a table."""

    title: str
    command: str  # how to run it
    measured: str  # when the committed JSON was measured, unless the JSON has a "date"
    about: str  # what it measures: a format template over the result
    header: tuple[str, ...]
    rows: Rows
    notes: str = ""  # after the table: a format template over the result


BENCHES: dict[str, Bench] = {
    "audio_extract": Bench(
        title="Audio descriptors",
        command="python bench/audio_extract.py --json bench/results/audio_extract.json",
        measured="2026-11",
        about=(
            "{clips} music-like clips of {clip_duration_s:.0f} s (44.1 kHz stereo WAV, plus MP3 copies): a plain "
            "librosa loop computing the same descriptor list with library defaults (`librosa.load`, then each "
            "`librosa.feature.*` / `librosa.beat.*` on the waveform, each recomputing its STFT; chroma with tuning "
            "estimation; tonnetz from a CQT chroma) against mmer's per-clip job (decode + `extract_clip`, which "
            "also builds the log-mel tensor), and the peak memory of `mmer audio-features` over a "
            "{rss_clips:,}-row manifest."
        ),
        header=("measure", "value", "target"),
        rows=table(
            ("naive librosa loop (single-threaded, like one worker)", "{naive_clips_per_s:.1f} clips/s", ""),
            ("mmer, 1 worker", "{clips_per_s:.1f} clips/s ({x_realtime:.0f}× real time)", ""),
            (
                "mmer, {workers} workers",
                "{clips_per_s_all_workers:.1f} clips/s ({x_realtime_all_workers:.0f}× real time)",
                "",
            ),
            ("`speedup_vs_naive` (1 worker)", "**{speedup_vs_naive:.1f}×**", Target("speedup_vs_naive", ">=", 4)),
            (
                "… against a naive loop using mmer's chroma/tonnetz definitions",
                "{speedup_vs_naive_same_definitions:.1f}×",
                "",
            ),
            ("`scaling_2_workers`", "**{scaling_2_workers:.2f}**", Target("scaling_2_workers", ">=", 1.8)),
            (
                "`peak_rss_mb`: PSS of the stage's main process + {workers} workers, {rss_clips:,} clips × "
                "{clip_duration_s:.0f} s ({rss_run_clips_per_s:.1f} clips/s)",
                "**{peak_rss_mb:,.0f} MB**",
                Target("peak_rss_mb", "<", 1024, "1 GB"),
            ),
            ("`max_rel_diff` of MFCC means vs librosa", "**{max_rel_diff:.1e}**", Target("max_rel_diff", "<", 1e-3)),
            ("… over every feature family both compute the same way", "{max_rel_diff_shared_features:.1e}", ""),
            ("MP3 input, 1 worker", "{mp3_clips_per_s:.1f} clips/s", ""),
            ("`audio.hpss: true` extra cost", "+{hpss_extra_s_per_clip:.2f} s per clip", ""),
        ),
        notes=(
            "The memory figure grows with the worker count (each worker holds one 30-s clip's spectrograms, about "
            "200 MB) but not with the corpus: rows are streamed to disk. Part of the speed-up "
            "({speedup_vs_naive:.1f}× vs {speedup_vs_naive_same_definitions:.1f}×) comes from cheaper definitions: "
            "chroma without tuning estimation and tonnetz from the STFT chroma instead of a CQT chroma; the rest is "
            "in [stores.md](../docs/stores.md#audio-descriptors-featuresaudioparquet)."
        ),
    ),
    "determinism": Bench(
        title="Determinism: what depends on the CPU's kernels",
        command="python bench/determinism.py --json bench/results/determinism.json",
        measured="2026-12",
        about=(
            "A {clips}-clip demo project through the audio, musicnn and text stages and four train variants, once "
            "per environment, with the same library versions: each environment makes a library pick another kernel, "
            "as another CPU or setting would (`baseline_again` changes nothing). Each cell: `identical` values to "
            "the baseline run, or the largest deviation relative to the column's scale."
        ),
        header=("environment", *DETERMINISM_OUTPUTS),
        rows=determinism_rows,
        notes="Byte-identical files (metadata included) in the second unchanged run: {baseline_again_same_bytes}.",
    ),
    "tuning": Bench(
        title="Nested tuning and group normalisation",
        command="python bench/tuning.py --json bench/results/tuning.json  # after make repro; needs ../shared",
        measured="2026-12",
        about=(
            "Each variant untuned (params.yaml) and tuned (`tune.enabled: true`, {n_trials} optuna TPE trials per "
            "outer fold with the default search spaces, each trial scored on 3 inner stratified folds (grouped on "
            "RAVDESS) for logreg and lgbm, on the inner validation split for the mlp) in the same run: pooled "
            "out-of-fold macro-F1 and the stage's train time. The demo reads the workspace's stores; the shared "
            "RAVDESS sung-phrase corpus (274 clips, 6 classes, 23 singers, folds grouped by singer) is built in "
            "a scratch project and also trained with `train.normalize: group` (per-singer z-scores) against the "
            "default global standardisation."
        ),
        header=("variant", "macro-F1 untuned", "tuned (Δ)", "train time untuned → tuned", "normalize: group (Δ)"),
        rows=tuning_rows,
    ),
    "predict": Bench(
        title="Prediction overhead",
        command="python bench/predict.py --json bench/results/predict.json  # after make repro",
        measured="2026-12",
        about=(
            "`mmer predict` with the demo's bundle (`{bundle}`) on {clips} fresh demo songs of "
            "{seconds_per_clip:.0f} s (another seed), {workers} workers, no cache: the whole command against the "
            "feature extraction it runs (the same stages and configuration, alone), in the same run. The "
            "extraction-alone run goes first and pays for cold file caches, so a ratio under 1 means the "
            "overhead is below that noise."
        ),
        header=("measure", "value", "target"),
        rows=table(
            ("feature extraction alone", "{extract_s:.1f} s", ""),
            ("mmer predict (bundle checks, extraction, model, output)", "{predict_s:.1f} s", ""),
            ("overhead ratio", "**{overhead_ratio:.3f}**", Target("overhead_ratio", "<", 1.15, "1.15")),
            ("songs per second, {workers} workers", "{songs_per_s:.2f}", ""),
            ("macro-F1 on these songs", "{f1_macro:.3f}", ""),
        ),
    ),
    "train_cost": Bench(
        title="Train stages",
        command="python bench/train_cost.py --json bench/results/train_cost.json  # after make repro",
        measured="2026-12",
        about=(
            "Two of the demo's costliest train stages, each run with the former settings (LightGBM without early "
            "stopping; the cnn on the full 432 log-mel frames, 40 epochs, patience 6) and with today's defaults "
            "(early stopping after 30 trees without a better inner-validation log-loss; 4 frames averaged, 30 "
            "epochs, patience 10), in the same run. Seconds are the stage's own `runtime.train_seconds`."
        ),
        header=("variant", "former", "today", "speed-up", "macro-F1 former → today"),
        rows=table(
            (
                "cnn-audio",
                "{cnn_audio_baseline_s:.1f} s",
                "{cnn_audio_s:.1f} s",
                "**{cnn_audio_speedup:.1f}×**",
                "{cnn_audio_baseline_f1:.3f} → {cnn_audio_f1:.3f}",
            ),
            (
                "lgbm-late",
                "{lgbm_late_baseline_s:.1f} s",
                "{lgbm_late_s:.1f} s",
                "**{lgbm_late_speedup:.1f}×**",
                "{lgbm_late_baseline_f1:.3f} → {lgbm_late_f1:.3f}",
            ),
        ),
        notes=(
            "The former macro-F1 lies inside today's 95 % CI: cnn-audio {cnn_audio_baseline_in_ci}, lgbm-late "
            "{lgbm_late_baseline_in_ci}. All {repro_variants} train stages of the last `dvc repro` took "
            "**{repro_train_s_total:.0f} s** together (target ≤ 360 s; 1,226 s before)."
        ),
    ),
    "long_clip": Bench(
        title="Long recordings",
        command="python bench/long_clip.py --json bench/results/long_clip.json",
        measured="2026-11",
        about=(
            "{recording_min} minutes of music-like audio ({source}) through the per-clip audio job, each setting "
            "in a fresh process, against the uncapped job measured in the same run."
        ),
        header=("setting", "time", "peak RSS", "vs uncapped (time / RSS)"),
        rows=table(
            (
                "`max_duration_s: null` (whole file: baseline)",
                "{uncapped_s:.1f} s",
                "{uncapped_peak_rss_mb:,} MB",
                "1 / 1",
            ),
            (
                "default `max_duration_s: 600`",
                "{default_cap_600s_s:.1f} s",
                "{default_cap_600s_peak_rss_mb:,} MB",
                "**{default_cap_600s_time_vs_uncapped:.2f} / {default_cap_600s_rss_vs_uncapped:.2f}**",
            ),
            (
                "`duration_s: 30`",
                "{window_30s_s:.1f} s",
                "{window_30s_peak_rss_mb:,} MB",
                "{window_30s_time_vs_uncapped:.2f} / {window_30s_rss_vs_uncapped:.2f}",
            ),
        ),
    ),
    "manifest_scale": Bench(
        title="Manifest validation",
        command="python bench/manifest_scale.py --json bench/results/manifest_scale.json",
        measured="2026-11",
        about=(
            "A {rows:,}-row CSV manifest (id, relative audio path, lyrics, label, artist group) with {rows:,} empty "
            "audio files."
        ),
        header=("measure", "value"),
        rows=table(
            ("`pandas.read_csv` of the file (baseline)", "{read_csv_s:.3f} s"),
            (
                "`read_manifest_file` + `validate_manifest` (every check, file existence included)",
                "{read_and_validate_s:.2f} s (**{validate_vs_read_csv:.1f}×** the baseline)",
            ),
            (
                "the whole `prepare` stage (plus the Parquet manifest store)",
                "{prepare_stage_s:.2f} s ({prepare_vs_read_csv:.1f}×)",
            ),
            ("cost per row with all rows vs a tenth of them (1 = linear)", "{per_row_cost_100pct_vs_10pct:.2f}"),
        ),
    ),
    "musicnn_embed": Bench(
        title="musicnn embeddings",
        command="python bench/musicnn_embed.py --json bench/results/musicnn_embed.json",
        measured="2026-11",
        about=(
            "{clips} music-like clips of {clip_s:.0f} s (44.1 kHz stereo WAV; {patches} patches of 3 s) through the "
            "stage's per-clip job and executor, against mmer's descriptor job on the same clips in the same run."
        ),
        header=("measure", "value"),
        rows=table(
            ("descriptor job, 1 worker (baseline)", "{descriptors_1_worker_clips_per_s:.1f} clips/s"),
            (
                "musicnn job, 1 worker",
                "{musicnn_1_worker_clips_per_s:.2f} clips/s, {musicnn_1_worker_patches_per_s:.1f} patches/s "
                "(**{musicnn_time_vs_descriptors:.1f}×** the baseline's time)",
            ),
            (
                "musicnn job, 2 workers",
                "{musicnn_2_workers_clips_per_s:.2f} clips/s, {musicnn_2_workers_patches_per_s:.1f} patches/s, "
                "{musicnn_2_workers_x_real_time:.0f}× real time (scaling **{scaling_2_workers:.2f}**)",
            ),
            (
                "the network alone, batches of 32 patches, 1 thread",
                "{network_only_patches_per_s_1_thread:.1f} patches/s",
            ),
        ),
        notes=(
            "The network is nearly all of the cost; decoding and the log-mel are the rest "
            "([stores.md](../docs/stores.md#pretrained-musicnn-embeddings-featuresmusicnnparquet))."
        ),
    ),
    "encoder_embed": Bench(
        title="Encoder embeddings",
        command="python bench/encoder_embed.py --json bench/results/encoder_embed.json",
        measured="2026-12",
        about=(
            "{clips} music-like clips of {clip_s:.0f} s decoded at 16 kHz, {window_s:.0f}-s windows, every hidden "
            "layer pooled, through random-initialised models built from configs: `tiny` (the tests' 2-layer "
            "wav2vec2) and `base` (wav2vec2-base: 12 layers x 768, 95 M parameters, the size of WavLM/HuBERT-base "
            "and MERT-95M). The baseline is the naive loop, one window per forward pass, in the same run."
        ),
        header=("measure", "tiny", "base"),
        rows=table(
            (
                "naive loop, 1 thread (baseline)",
                "{tiny_naive_x_real_time:.0f}× real time",
                "{base_naive_x_real_time:.1f}× real time",
            ),
            (
                "batched ({batch_size} windows a pass), 1 thread",
                "{tiny_batched_x_real_time:.0f}× (**{tiny_batched_vs_naive:.2f}×** the baseline)",
                "{base_batched_x_real_time:.1f}× (**{base_batched_vs_naive:.2f}×** the baseline)",
            ),
            ("target: batched vs naive on the base model", "–", Target("base_batched_vs_naive", ">=", 2.0, "2×")),
            (
                "batched vs naive, largest relative deviation",
                "{tiny_batched_max_deviation_vs_naive:.1e}",
                "{base_batched_max_deviation_vs_naive:.1e}",
            ),
            ("stage job, 1 worker", "{tiny_1_worker_x_real_time:.0f}×", "{base_1_worker_x_real_time:.1f}×"),
            (
                "stage job, 2 workers",
                "{tiny_2_workers_x_real_time:.0f}× (scaling {tiny_scaling_2_workers:.2f})",
                "{base_2_workers_x_real_time:.1f}× (scaling {base_scaling_2_workers:.2f})",
            ),
            ("peak RSS of the process", "{tiny_peak_rss_mb_in_process:.0f} MB", "{base_peak_rss_mb_in_process:.0f} MB"),
            (
                "bfloat16, 1 thread",
                "–",
                "{base_bfloat16_x_real_time:.2f}× real time ({base_bfloat16_vs_float32:.3f}× float32's speed), "
                "largest deviation {base_bfloat16_max_deviation:.1e}",
            ),
        ),
        notes=(
            "Batching equal-length windows changes little on a CPU: a 10-s window is already ~500 frames, enough "
            "to keep the matrix products efficient, and batching saves only per-call overhead, so the issue's ≥ 2× "
            "target fits a GPU, not 2 CPU cores ([encoders.md](../docs/encoders.md#speed)). The 2-worker figure "
            "over 8 clips includes the second worker's start-up (imports, model load). bfloat16 helps only on "
            "CPUs with native bf16 instructions (AVX512-BF16, AMX); this one has none (`cpu_has_native_bf16`: "
            "{cpu_has_native_bf16}), so keep float32."
        ),
    ),
    "text_embed": Bench(
        title="Text embeddings",
        command="python bench/text_embed.py --json bench/results/text_embed.json",
        measured="2026-12",
        about=(
            "{songs} generated lyrics of 200–600 words (verses, a returning chorus, punctuation and ad-libs, LRC "
            "markup) — {words_per_song:.0f} words, {tokens_per_song:.0f} word-pieces and {windows_per_song:.1f} "
            "windows per song on average: plain truncating `encode` against mmer's whole-lyrics embedding."
        ),
        header=("measure", "value", "target"),
        rows=table(
            (
                "plain `encode` (truncates: reads {share_of_tokens_plain_encode_reads:.0%} of each song's "
                "word-pieces; float32)",
                "{plain_songs_per_s:.1f} songs/s",
                "",
            ),
            ("mmer whole-lyrics embedding, `text.dtype: float32` (default)", "{songs_per_s:.1f} songs/s", ""),
            ("`speedup_vs_plain`, float32", "**{speedup_vs_plain:.2f}×**", Target("speedup_vs_plain", ">=", 2)),
            (
                "`min_cosine`, float32, vs a reference that decodes each window and `encode`s it alone, one text "
                "at a time",
                "**{min_cosine:.4f}**",
                Target("min_cosine", ">=", 0.99),
            ),
            (
                "mmer whole-lyrics embedding, `text.dtype: bfloat16`",
                "{bfloat16_songs_per_s:.1f} songs/s (**{bfloat16_speedup_vs_float32:.1f}×** float32)",
                "",
            ),
            (
                "`speedup_vs_plain`, bfloat16",
                "**{bfloat16_speedup_vs_plain:.2f}×**",
                Target("bfloat16_speedup_vs_plain", ">=", 2),
            ),
            (
                "`min_cosine`, bfloat16, vs the same reference",
                "**{bfloat16_min_cosine:.4f}**",
                Target("bfloat16_min_cosine", ">=", 0.99),
            ),
        ),
        notes=(
            "The speed target cannot be met with this definition: mmer reads every word-piece of every song, "
            "plain `encode` only the first 256. Why, and the other levers measured: "
            "[stores.md](../docs/stores.md#text-embeddings-featurestextparquet)."
        ),
    ),
    "scaling": Bench(
        title="Executor scaling",
        command="python bench/scaling.py --json bench/results/scaling.json",
        measured="2026-12",
        about=(
            "What the audio stage runs — {clips} clips of {clip_s:.0f} s (44.1 kHz stereo), decode + descriptors + "
            "log-mel per clip, both stores written — on local processes and on a Dask LocalCluster, with "
            "single-file and with partitioned stores (64 clips a part), against local with 1 worker and single "
            "files, all in one run ({cores} cores; cluster start-up, a few seconds per stage, excluded)."
        ),
        header=("executor", "stores", "clips/s", "vs local, 1 worker"),
        rows=scaling_rows,
        notes="What this says about when to use Dask: [cluster.md](../docs/cluster.md#what-it-buys-on-one-machine).",
    ),
    "merge_scale": Bench(
        title="MERGE-sized run",
        command="python bench/merge_scale.py --dest /tmp/mmer_merge_scale --json bench/results/merge_scale.json",
        measured="2026-11",
        about=(
            "`make bench-merge`: a fake release the size of MERGE Bimodal Complete — {clips:,} clips × "
            "{seconds_per_clip:.0f} s MP3 (synthetic music from the demo generator) with ~330-word lyrics, the "
            "published folder and CSV names and both split strategies — through every stage with "
            "`dataset.kind: merge`, `variant: complete`, `eval.scheme: fixed` and the cache off, timing each; "
            "building the tree took {generate_s:.0f} s more."
        ),
        header=("stage", "seconds ({cores} cores)"),
        rows=merge_rows,
        notes=(
            "The scores of that run mean nothing (its synthetic lyrics name their quadrant): it measures time, not "
            "accuracy. What to expect on the real release: [datasets.md](../docs/datasets.md#merge)."
        ),
    ),
}


def cell_text(value: Any) -> str:
    """A JSON value in a generic key/value table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def section(name: str, result: Result) -> list[str]:
    """The Markdown of one benchmark: title, what it measures, how to run it, where and when, the table."""
    bench = BENCHES.get(name)
    source = f"[`results/{name}.json`](results/{name}.json)"
    machine = result.get("machine", MACHINE)
    if bench is None:
        date = result.get("date", "date not recorded")
        rows = [[f"`{key}`", cell_text(value)] for key, value in result.items() if key not in ("machine", "date")]
        lines = [f"## {name}", "", f"Measured on {machine}, {date}; {source}.", "", "| key | value |", "|---|---|"]
        return lines + [f"| {' | '.join(row)} |" for row in rows] + [""]
    header = [h.format(**result) for h in bench.header]
    lines = [
        f"## {bench.title}",
        "",
        bench.about.format(**result),
        "",
        f"Run: `{bench.command}`. Measured on {machine}, {result.get('date', bench.measured)}; {source}.",
        "",
        f"| {' | '.join(header)} |",
        "|" + "---|" * len(header),
    ]
    lines += [f"| {' | '.join(row)} |" for row in bench.rows(result)]
    return lines + ([""] + [bench.notes.format(**result)] if bench.notes else []) + [""]


def render(results_dir: Path = RESULTS) -> str:
    """bench/README.md for the JSON files in ``results_dir``: described benchmarks first, in BENCHES order."""
    results = {path.stem: json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))}
    names = [n for n in BENCHES if n in results] + sorted(n for n in results if n not in BENCHES)
    titles = [BENCHES[n].title if n in BENCHES else n for n in names]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/render_readme.py from bench/results/*.json: edit those or the script, "
        "not this file. -->",
        "",
        "`make bench` runs every benchmark below but the MERGE-sized run (`make bench-merge`, about 25 minutes); "
        "each writes its JSON to `bench/results/`, from which `bench/render_readme.py` rewrites this page "
        "(`make bench-readme` on its own). Each script measures its baseline in the same run, so the ratios carry "
        "over to other machines; absolute rates depend on the CPU and on how busy it is.",
        "",
        " · ".join(f"[{title}](#{slug(title)})" for title in titles),
        "",
    ]
    for name in names:
        lines += section(name, results[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def slug(title: str) -> str:
    """GitHub's anchor for a plain heading (letters, digits, spaces, hyphens)."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def write_atomically(text: str, path: Path) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render bench/README.md from bench/results/*.json.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is not up to date; write nothing")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    parser.add_argument("--output", type=Path, default=README, help="the README to write or check")
    args = parser.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python bench/render_readme.py", file=sys.stderr)
            return 1
        return 0
    write_atomically(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
