"""Runtime of every stage on a fake MERGE release the size of MERGE Bimodal Complete.

Builds ``MERGE_Bimodal_Complete/`` with the published file names, CSV columns and both
official splits (2,216 clips x 30 s MP3 by default, synthetic music from the demo
generator, lyrics of about 330 words), then runs prepare, the three feature stages, one
train stage per variant of dvc.yaml and the report with ``dataset.kind: merge`` and
``eval.scheme: fixed`` (fit on train, select on validate, score test — as the MERGE
paper does), timing each. Prints and optionally writes (``--json``) seconds per stage.

    python bench/merge_scale.py --dest /tmp/merge_scale [--clips 2216] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.datasets.demo import make_clip, write_lyric
from pipeline.executor import ClipTask, map_clips

REPO = Path(__file__).resolve().parents[1]


def render_song(index: int, seed: int, seconds: float, folder: str) -> dict:
    """One fake MERGE song: audio/Q*/A<index>.mp3 and lyrics/Q*/L<index>.txt (a job for map_clips)."""
    clip, audio = make_clip(index, seed, 22050, seconds, 0.08)
    rng = np.random.default_rng([seed, index, 1])
    lyric = "\n\n".join(write_lyric(clip.valence, clip.arousal, rng, n_lines=8) for _ in range(5))
    song, lyric_id = f"A{index:05d}", f"L{index:05d}"
    audio_path = Path(folder) / "audio" / clip.label / f"{song}.mp3"
    lyric_path = Path(folder) / "lyrics" / clip.label / f"{lyric_id}.txt"
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    lyric_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(audio_path, audio, 22050, format="MP3")
    lyric_path.write_text(lyric)
    return {
        "Audio_Song": song,
        "Lyric_Song": lyric_id,
        "Quadrant": clip.label,
        "Artist": f"Artist {index % 400}",
        "Title": f"Song {index}",
        "Arousal": clip.arousal,
        "Valence": clip.valence,
    }


def build_tree(dest: Path, n_clips: int, seconds: float, seed: int = 0) -> Path:
    """The fake ``MERGE_Bimodal_Complete`` folder (reused when its metadata already exists)."""
    folder = dest / "MERGE_Bimodal_Complete"
    if (folder / "merge_bimodal_complete_metadata.csv").exists():
        return folder
    tasks = [ClipTask(f"A{i:05d}", (i, seed, seconds, str(folder))) for i in range(n_clips)]
    rows, failures = map_clips(render_song, tasks, n_jobs=-1, stage="generate", desc="fake MERGE")
    if failures:
        raise RuntimeError(failures[0])
    table = pd.DataFrame([rows[t.clip_id] for t in tasks])
    table.drop(columns=["Arousal", "Valence"]).to_csv(folder / "merge_bimodal_complete_metadata.csv", index=False)
    table[["Audio_Song", "Lyric_Song", "Arousal", "Valence"]].to_csv(
        folder / "merge_bimodal_complete_av_values.csv", index=False
    )
    order = np.random.default_rng(seed).permutation(n_clips)
    for split, (train, val) in {"70_15_15": (0.70, 0.15), "40_30_30": (0.40, 0.30)}.items():
        bounds = [int(train * n_clips), int((train + val) * n_clips)]
        for part, index in zip(("train", "validate", "test"), np.split(order, bounds)):
            path = folder / "tvt_dataframes" / f"tvt_{split}" / f"tvt_{split}_{part}_bimodal_complete.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            table.iloc[index][["Audio_Song", "Quadrant"]].rename(columns={"Audio_Song": "Song"}).to_csv(
                path, index=False
            )
    return folder


def variants() -> list[tuple[str, str, list[str] | None]]:
    """(model, fusion, --audio-sets or None) of every train stage in dvc.yaml."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]

    def matrix(name: str) -> list[tuple[str, str]]:
        m = stages[name]["matrix"]
        return [(model, fusion) for model in m["model"] for fusion in m["fusion"]]

    out = [(m, f, None) for m, f in matrix("train")]
    out += [(m, f, ["musicnn"]) for m, f in matrix("train_musicnn")]
    out += [("multitask", f, None) for f in stages["train_multitask"]["matrix"]["fusion"]]
    out += [("cnn", f, None) for f in stages["train_cnn"]["matrix"]["fusion"]]
    return [*out, ("dummy", "none", None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=2216)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dest = args.dest.resolve()
    json_path = args.json.resolve() if args.json else None  # the stages run inside dest/project
    started = time.perf_counter()
    build_tree(dest, args.clips, args.seconds)
    generate_s = time.perf_counter() - started

    project = dest / "project"
    project.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update({"kind": "merge", "root": str(dest), "variant": "complete", "split": "70_15_15"})
    params["eval"]["scheme"] = "fixed"
    params["cache"]["enabled"] = False  # time the work, not the cache
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    os.chdir(project)

    from pipeline.params import load_params
    from pipeline.stages import (
        audio_features,
        essentia_features,
        musicnn_features,
        prepare,
        report,
        text_features,
        train,
    )

    p = load_params()
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *a) -> None:
        t = time.perf_counter()
        fn(*a)
        seconds[name] = round(time.perf_counter() - t, 1)
        print(f"-- {name}: {seconds[name]} s", flush=True)

    timed("prepare", prepare.run, p)
    timed("audio_features", audio_features.run, p)
    timed("essentia_features", essentia_features.run, p)
    timed("musicnn_features", musicnn_features.run, p)
    timed("text_features", text_features.run, p)
    for model, fusion, audio_sets in variants():
        name = f"{model}@{'+'.join(audio_sets)}" if audio_sets else model
        timed(f"train {name}-{fusion}", train.run, p, model, fusion, audio_sets)
    timed("report", report.run)
    result = {
        "clips": args.clips,
        "seconds_per_clip": args.seconds,
        "cores": os.cpu_count(),
        "generate_s": round(generate_s, 1),
        "stage_s": seconds,
        "train_total_s": round(sum(v for k, v in seconds.items() if k.startswith("train")), 1),
        "total_s": round(sum(seconds.values()), 1),
    }
    print(json.dumps(result, indent=2))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
