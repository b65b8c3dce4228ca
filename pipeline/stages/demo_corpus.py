"""Stage ``demo_corpus``: generate the synthetic demo corpus under data/demo/."""

from __future__ import annotations

import shutil

from pipeline.datasets.demo import generate_corpus
from pipeline.params import Params
from pipeline.stages import DEMO_ROOT


def run(params: Params) -> None:
    """Write data/demo/ (audio + manifest.csv), or a note when another corpus is selected."""
    if DEMO_ROOT.exists():
        shutil.rmtree(DEMO_ROOT)
    if params.dataset.kind != "demo":
        DEMO_ROOT.mkdir(parents=True)
        (DEMO_ROOT / "NOT_GENERATED.txt").write_text(
            f"dataset.kind is {params.dataset.kind!r}: the demo corpus is not generated.\n"
        )
        return
    d = params.demo
    generate_corpus(DEMO_ROOT, d.n_clips, d.duration_s, d.sr, params.seed, d.contradiction_rate, params.executor.n_jobs)
