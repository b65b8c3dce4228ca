"""Which outputs depend on the CPU's instruction set, thread counts or kernel choices?

Builds a small demo project once (corpus + manifest), then runs the feature stages and a
few train stages through the ``mmer`` CLI in fresh processes, once per environment below.
Every run uses the same library versions (this venv), so any difference comes from the
kernel a library picked at run time, never from a version change. Each store is compared
with the baseline run: byte-identical table contents, or the largest relative deviation.

Environments (each emulates what another machine or setting would pick):
- ``baseline_again``: nothing changed, a second run (same machine, same versions: every
  output file should be byte-identical, and the bench records whether it is);
- ``threads_1``: one OpenMP/MKL thread in the feature stages (the default is all cores);
- ``torch_no_avx2``: torch's own kernels without AVX2 (``ATEN_CPU_CAPABILITY=default``);
- ``onednn_sse41``: oneDNN (torch's convolutions) limited to SSE4.1;
- ``mkl_cbwr``: MKL's conditional numerical reproducibility (``MKL_CBWR=COMPATIBLE``);
- ``numpy_no_avx2``: numpy's SIMD dispatch without AVX/AVX2/FMA3;
- ``openblas_sandybridge``: OpenBLAS (numpy/scipy's BLAS) with its AVX-only kernels.

Run: ``python bench/determinism.py --json bench/results/determinism.json`` (about 8 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

ENVIRONMENTS: dict[str, dict[str, str]] = {
    "baseline": {},
    "baseline_again": {},
    "threads_1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "torch_no_avx2": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn_sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "mkl_cbwr": {"MKL_CBWR": "COMPATIBLE"},
    "numpy_no_avx2": {"NPY_DISABLE_CPU_FEATURES": "AVX AVX2 FMA3 F16C"},
    "openblas_sandybridge": {"OPENBLAS_CORETYPE": "SandyBridge"},
}
FEATURE_STAGES = ("audio-features", "musicnn-features", "text-features")
VARIANTS = (("logreg", "concat"), ("lgbm", "concat"), ("mlp", "concat"), ("cnn", "audio"))
# store (relative to the project) -> what it holds
OUTPUTS = {
    "features/audio.parquet": "audio",
    "features/melspec.parquet": "melspec",
    "features/musicnn.parquet": "musicnn",
    "features/text.parquet": "text",
    **{f"models/{m}-{f}/oof.parquet": f"{m}-{f}" for m, f in VARIANTS},
}
OVERRIDES = {
    "demo": {"n_clips": 16, "duration_s": 3.0},
    "essentia": {"enabled": False},
    "cache": {"enabled": False},
    "audio": {"melspec_frames": 64},
    "eval": {"n_folds": 3},
    "train": {
        "cnn": {"max_epochs": 2, "patience": 2},
        "mlp": {"max_epochs": 10, "patience": 5},
        "lgbm": {"n_estimators": 20},
    },
}


def numeric_matrix(path: Path) -> np.ndarray:
    """Every numeric value of a store (list and tensor columns flattened), float64, in row order."""
    table = pd.read_parquet(path).sort_values("clip_id", kind="stable")
    parts = []
    for column in table.columns:
        values = table[column]
        if values.dtype == object and len(values) and isinstance(values.iloc[0], np.ndarray | list):
            parts.append(np.stack([np.asarray(v, dtype=np.float64).ravel() for v in values]))
        elif pd.api.types.is_numeric_dtype(values):
            parts.append(values.to_numpy(dtype=np.float64)[:, None])
    return np.concatenate(parts, axis=1)


def deviation(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| relative to the column's scale (0.0 = identical values)."""
    scale = np.maximum(np.nanmax(np.abs(a), axis=0), 1e-12)
    return float(np.nanmax(np.abs(a - b) / scale))


def run_project(folder: Path, env: dict[str, str]) -> float:
    """The feature stages and the train variants in ``folder``; returns the wall time."""
    started = time.perf_counter()
    for stage in FEATURE_STAGES:
        subprocess.run(["mmer", stage], cwd=folder, env=env, check=True, capture_output=True)
    for model, fusion in VARIANTS:
        subprocess.run(
            ["mmer", "train", "--model", model, "--fusion", fusion],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        template.mkdir()
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        for section, values in OVERRIDES.items():
            params[section] = {**(params.get(section) or {}), **values}
        (template / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for stage in ("demo", "prepare"):
            subprocess.run(["mmer", stage], cwd=template, env=base_env, check=True, capture_output=True)
        result: dict = {"date": time.strftime("%Y-%m-%d"), "clips": OVERRIDES["demo"]["n_clips"]}
        baseline: dict[str, np.ndarray] = {}
        for name, extra in ENVIRONMENTS.items():
            folder = Path(tmp) / name
            shutil.copytree(template, folder)
            seconds = run_project(folder, {**base_env, **extra})
            result[f"{name}_seconds"] = round(seconds, 1)
            for store, label in OUTPUTS.items():
                values = numeric_matrix(folder / store)
                if name == "baseline":
                    baseline[label] = values
                    continue
                same = values.shape == baseline[label].shape and np.array_equal(values, baseline[label], equal_nan=True)
                result[f"{name}:{label}"] = 0.0 if same else deviation(values, baseline[label])
            if name == "baseline_again":  # whole files, metadata included
                same_bytes = [
                    label
                    for store, label in OUTPUTS.items()
                    if (folder / store).read_bytes() == (Path(tmp) / "baseline" / store).read_bytes()
                ]
                result["baseline_again_same_bytes"] = f"{len(same_bytes)} of {len(OUTPUTS)} ({', '.join(same_bytes)})"
            print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    emit(result, args.json)


if __name__ == "__main__":
    main()
