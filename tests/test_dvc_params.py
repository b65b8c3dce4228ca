"""The ``params:`` lists of dvc.yaml's train stages match the keys the train stage reads.

:func:`pipeline.stages.train.param_keys` declares what a variant reads; the first tests
check dvc.yaml's five pasted lists against it, the last one runs the stage with params
that record every key read and checks them against it.
"""

import copy
import dataclasses
import itertools
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.params import as_dict, load_params
from pipeline.stages import train
from tests.conftest import write_params

DVC = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())
TRAIN_STAGES = (
    "train",
    "train_musicnn",
    "train_multitask",
    "train_cnn",
    "train_dummy",
    "train_encoders",
    "zeroshot",
    "train_text_encoders",
)
# read by the stage but not DVC params of the train stages; see the reason of each
NOT_DVC_PARAMS = {
    # empties features/musicnn.parquet when false, and that store is a dependency of every train stage
    "musicnn.enabled",
    # how to reach a Dask cluster: only train.lgbm.distributed uses it (a gap: switching executor.kind with
    # train.lgbm.distributed true changes lgbm results but reruns nothing)
    "executor.kind",
    "executor.address",
    "executor.workers",
}


def substitute(value: str, item: dict) -> str:
    for key, v in item.items():
        value = value.replace(f"${{item.{key}}}", str(v))
    return value


def variants(stage: dict) -> list[tuple[dict, str, list[str]]]:
    """(matrix item, command, params list) of each variant of a stage."""
    matrix = stage.get("matrix", {})
    # a matrix over a params.yaml mapping (``encoder: ${encoders}``, empty by default) gets one name, "x"
    axes = [["x"] if isinstance(values, str) and values.startswith("${") else values for values in matrix.values()]
    items = [dict(zip(matrix, values)) for values in itertools.product(*axes)]
    return [(item, substitute(stage["cmd"], item), [substitute(p, item) for p in stage["params"]]) for item in items]


def options(cmd: str) -> dict[str, list[str]]:
    """``mmer train --model lgbm --audio-sets a b`` -> {"model": ["lgbm"], "audio-sets": ["a", "b"]}."""
    words = shlex.split(cmd)
    assert words[:2] == ["mmer", "train"], cmd
    found: dict[str, list[str]] = {}
    for word in words[2:]:
        if word.startswith("--"):
            key = found.setdefault(word[2:], [])
        else:
            key.append(word)
    return found


def mismatches(stages: dict) -> list[str]:
    """One line per train variant whose params list is not what :func:`train.param_keys` says it reads."""
    problems = []
    for name in TRAIN_STAGES:
        for item, cmd, listed in variants(stages[name]):
            opts = options(cmd)
            expected = train.param_keys(opts["model"][0], opts.get("audio-sets"), opts.get("text-sets"))
            missing, extra = sorted(set(expected) - set(listed)), sorted(set(listed) - set(expected))
            repeated = sorted({p for p in listed if listed.count(p) > 1})
            if missing or extra or repeated:
                problems.append(f"{name} {item}: missing {missing}, extra {extra}, repeated {repeated}")
    return problems


def test_every_train_stage_is_checked():
    commands = {name: stage.get("cmd") or stage["do"]["cmd"] for name, stage in DVC["stages"].items()}
    runs_train = {name for name, cmd in commands.items() if cmd.startswith("mmer train")}
    assert runs_train == set(TRAIN_STAGES)


def test_train_stages_list_the_params_the_stage_reads():
    assert mismatches(DVC["stages"]) == []


def test_a_missing_or_extra_param_is_reported():
    stages = copy.deepcopy(DVC["stages"])
    stages["train_cnn"]["params"].remove("text.lowercase")
    stages["train_dummy"]["params"].append("train.dummy")
    stages["train_musicnn"]["params"].remove("musicnn.enabled")
    problems = mismatches(stages)
    assert len(problems) == 6 + 1 + 6  # train_cnn's six fusions, the dummy, train_musicnn's 3 x 2 variants
    assert all("missing ['text.lowercase']" in p for p in problems if p.startswith("train_cnn "))
    assert all("missing ['musicnn.enabled']" in p for p in problems if p.startswith("train_musicnn "))
    assert [p for p in problems if p.startswith("train_dummy ")] == [
        "train_dummy {}: missing [], extra ['train.dummy'], repeated []"
    ]


class Recorder:
    """A params object (or one of its sections) that records the dotted key of every field read through it."""

    def __init__(self, obj, reads: set, prefix: str = ""):
        self._obj, self._reads, self._prefix = obj, reads, prefix

    def __getattr__(self, name: str):
        value = getattr(self._obj, name)
        key = f"{self._prefix}{name}"
        if dataclasses.is_dataclass(value):
            return Recorder(value, self._reads, f"{key}.")
        if callable(value):  # a method: it runs on the recorder, so what it reads is recorded too
            return getattr(type(self._obj), name).__get__(self)
        self._reads.add(key)
        return value


def undeclared(reads: set, declared: list[str]) -> list[str]:
    """The keys read that neither are nor sit under a declared key (``train.lgbm`` covers ``train.lgbm.x``)."""
    return sorted(k for k in reads if not any(k == d or k.startswith(f"{d}.") for d in declared))


def test_undeclared_reads_are_found():
    reads = {"seed", "train.lgbm.n_estimators", "train.mlp.hidden", "eval.n_boot"}
    assert undeclared(reads, train.param_keys("lgbm")) == ["eval.n_boot", "train.mlp.hidden"]


@pytest.mark.parametrize(
    ("model", "fusion", "audio_sets", "representation"),
    [
        ("dummy", "none", None, "embedding"),
        ("logreg", "late", None, "tfidf"),
        ("lgbm", "concat", ["musicnn"], "embedding"),
        ("mlp", "mean", None, "embedding"),
    ],
)
def test_the_stage_reads_only_the_declared_keys(project, monkeypatch, model, fusion, audio_sets, representation):
    write_params(project, {"text": {"representation": representation}})
    reads: set = set()
    # the whole eval and train sections are recorded in the outputs' metadata (run_params): not read as settings
    monkeypatch.setattr(train, "as_dict", lambda obj: as_dict(obj._obj if isinstance(obj, Recorder) else obj))
    train.run(Recorder(load_params(), reads), model, fusion, audio_sets)
    assert (project / "models" / f"{model}{'@musicnn' if audio_sets else ''}-{fusion}" / "oof.parquet").exists()
    assert undeclared(reads - NOT_DVC_PARAMS, train.param_keys(model, audio_sets)) == []
    assert "seed" in reads and (model == "dummy" or any(k.startswith(f"train.{model}.") for k in reads))
