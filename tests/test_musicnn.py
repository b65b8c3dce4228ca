"""musicnn: the checkpoint reader, the PyTorch port against the original TensorFlow graph, the stage."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.features import ClipError, musicnn, musicnn_net
from pipeline.features.musicnn import SR, extract_musicnn, log_mel, tag_names
from pipeline.features.musicnn_net import MusicnnError, from_checkpoint, load_musicnn, weights_dir
from pipeline.features.tf_checkpoint import CheckpointError, read_checkpoint, read_index

REFERENCE = Path(__file__).parent / "data" / "musicnn"


def reference_module():
    """tests/data/musicnn/make_reference.py (its inputs need only numpy; TensorFlow only to make outputs)."""
    spec = importlib.util.spec_from_file_location("make_reference", REFERENCE / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drum_loop(seconds: float = 10.0) -> np.ndarray:
    """Kick on every half second, a noise snare between: 120 bpm."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * SR), np.float32)
    beat = SR // 2
    for start in range(0, len(y), beat):
        n = min(2000, len(y) - start)
        y[start : start + n] += np.sin(2 * np.pi * 60 * np.arange(n) / SR) * np.exp(-np.arange(n) / 400)
        snare = start + beat // 2
        m = max(0, min(1500, len(y) - snare))
        y[snare : snare + m] += 0.4 * rng.normal(size=m) * np.exp(-np.arange(m) / 200)
    return y


def sine(seconds: float = 10.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def test_checkpoint_reader_gives_every_trained_tensor_with_its_shape():
    weights = read_checkpoint(f"{weights_dir('MSD_musicnn')}/")
    assert weights["conv2d/kernel"].shape == (7, 38, 1, 204)  # timbral 7x38
    assert weights["conv2d_2/kernel"].shape == (128, 1, 1, 51)  # temporal 128x1
    assert weights["conv2d_5/kernel"].shape == (7, 561, 1, 64)  # first mid-end layer
    assert weights["dense/kernel"].shape == (1506, 200) and weights["dense_1/kernel"].shape == (200, 50)
    assert len([n for n in weights if n.endswith("/moving_variance")]) == 11
    assert not [n for n in weights if "Adam" in n or n.startswith("beta")]  # optimiser state skipped
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())
    index = read_index(f"{weights_dir('MSD_musicnn')}/.index")
    assert "beta1_power" in index and "dense/kernel/Adam" in index and len(index) == 151  # 150 tensors + header
    assert index[""] == {"num_shards": 1, "little_endian": True}


@pytest.fixture
def checkpoint_copy(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(weights_dir("MSD_musicnn"), folder)
    return folder


def test_checkpoint_reader_rejects_truncated_and_corrupt_files(checkpoint_copy):
    data = checkpoint_copy / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1_000_000])
    with pytest.raises(CheckpointError, match="data shard has 1000000 bytes; the file is truncated"):
        read_checkpoint(f"{checkpoint_copy}/")
    index = checkpoint_copy / ".index"
    original = index.read_bytes()
    index.write_bytes(original[:-10])
    with pytest.raises(CheckpointError, match=r"\.index: no table magic number at the end; .* truncated"):
        read_checkpoint(f"{checkpoint_copy}/")
    index.write_bytes(original[:20])
    with pytest.raises(CheckpointError, match="shorter than a table footer"):
        read_checkpoint(f"{checkpoint_copy}/")


def test_weights_must_fit_the_port_exactly():
    weights = read_checkpoint(f"{weights_dir('MSD_musicnn')}/")
    wrong = {**weights, "dense/kernel": weights["dense/kernel"][:, :100]}
    with pytest.raises(CheckpointError, match="does not fit the port"):
        from_checkpoint(wrong)
    with pytest.raises(CheckpointError, match="tensor conv2d_7/bias missing"):
        from_checkpoint({k: v for k, v in weights.items() if k != "conv2d_7/bias"})
    with pytest.raises(CheckpointError, match="tensors the port does not use: \\['extra/kernel'\\]"):
        from_checkpoint({**weights, "extra/kernel": weights["dense/bias"]})


def test_checkpoint_reader_checks_crc32c(checkpoint_copy):
    data = checkpoint_copy / ".data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[read_index(checkpoint_copy / ".index")["dense/kernel"]["offset"] + 1000] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="tensor dense/kernel fails its crc32c check"):
        read_checkpoint(f"{checkpoint_copy}/")
    assert len(read_checkpoint(f"{checkpoint_copy}/", verify_crc=False)) > 40


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
def test_port_reproduces_the_original_tensorflow_graph(model):
    ref = reference_module()
    expected = np.load(REFERENCE / f"reference_{model}.npz")
    with torch.inference_mode():
        out = load_musicnn(model)(torch.from_numpy(ref.reference_inputs()))
    for name in ref.OUTPUTS:
        got, want = out[name].numpy(), expected[name]
        assert got.shape == want.shape
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-4, name


@pytest.mark.parametrize(
    ("model", "signal", "plausible"),
    [
        ("MSD_musicnn", "drums", {"electronic", "electro", "electronica", "House", "dance", "Hip-Hop"}),
        ("MTT_musicnn", "drums", {"techno", "beat", "beats", "electronic", "drums", "dance"}),
        ("MSD_musicnn", "sine", {"ambient", "electronic", "experimental", "instrumental", "chillout"}),
        ("MTT_musicnn", "sine", {"flute", "solo", "slow", "quiet", "ambient", "synth"}),
    ],
)
def test_a_sine_and_a_drum_loop_get_plausible_top_tags(model, signal, plausible):
    y = drum_loop() if signal == "drums" else sine()
    record = extract_musicnn(y, load_musicnn(model))
    top3 = {tag_names(model)[i] for i in np.argsort(-record["tags"])[:3]}
    assert top3 <= plausible, top3
    assert record["n_patches"] == 3  # 10 s: three whole 3-s patches, the rest dropped as in the original


def test_loud_clips_stay_finite_where_float16_overflows():
    loud = np.sign(sine(5.0)).astype(np.float32)  # a full-scale square wave
    mel = log_mel(loud)
    power = (10**mel - 1) / 10000
    assert power.max() > 6.55  # the original's float16 mel overflows here: 10000 x 6.55 > 65504
    with np.errstate(over="ignore"):
        assert np.isinf(np.log10(10000 * power.astype(np.float16) + 1)).any()
    record = extract_musicnn(loud, load_musicnn("MSD_musicnn"))
    assert all(np.isfinite(record[k]).all() for k in ("pooled", "penultimate", "tags"))


def test_short_clips_are_repeat_padded_and_bad_samples_refused():
    model = load_musicnn("MSD_musicnn")
    one_second = drum_loop(1.0)
    record = extract_musicnn(one_second, model)
    assert record["n_patches"] == 1 and record["pooled"].shape == (1506,)
    assert record["penultimate"].shape == (200,) and record["tags"].shape == (50,)
    tiled = extract_musicnn(np.tile(one_second, 4), model)  # the same content, long enough for one patch
    assert np.corrcoef(record["pooled"], tiled["pooled"])[0, 1] > 0.95
    broken = one_second.copy()
    broken[100] = np.nan
    with pytest.raises(ClipError, match="NaN or inf"):
        extract_musicnn(broken, model)


def test_missing_weights_name_the_install_command(monkeypatch):
    monkeypatch.setattr(musicnn_net.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MusicnnError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        weights_dir("MSD_musicnn")
    with pytest.raises(ValueError, match="musicnn.model: 'MSD_vgg' is not one of"):
        musicnn.MusicnnConfig(model="MSD_vgg")


def test_musicnn_store_and_a_learner_reading_it(project, capsys):
    from pipeline.params import load_params
    from pipeline.stages import MUSICNN_ERRORS, MUSICNN_STORE, musicnn_features, train
    from pipeline.store import read_metadata, read_store

    musicnn_features.run(load_params())
    store = read_store(MUSICNN_STORE)
    assert len(store) == 40 and len(read_store(MUSICNN_ERRORS)) == 0
    assert store.filter(like="pool_").shape[1] == 1506 and store.filter(like="penultimate_").shape[1] == 200
    assert store.filter(like="tag_").shape[1] == 50 and (store["n_patches"] == 1).all()  # 2-s clips: padded
    meta = read_metadata(MUSICNN_STORE)
    assert meta["model"] == "MSD_musicnn" and meta["tags"][0] == "rock"
    assert set(meta["params"]["weights_sha256"]) == {".index", ".data-00000-of-00001"}
    musicnn_features.run(load_params())
    assert "0 computed, 40 from cache" in capsys.readouterr().out
    train.run(load_params(), "logreg", "concat", ["musicnn"])
    metrics = json.loads((Path("models") / "logreg@musicnn-concat" / "metrics.json").read_text())
    assert metrics["model"] == "logreg@musicnn" and metrics["learner"] == "logreg"
    assert metrics["audio_sets"] == ["musicnn"] and metrics["feature_dims"] == {"audio": 1506, "text": 384}
    assert metrics["summary"]["f1_macro"]["mean"] > 0.3  # four balanced classes: chance is 0.25
    with pytest.raises(ValueError, match="--audio-sets applies to the vector learners"):
        train.run(load_params(), "cnn", "audio", ["musicnn"])


def test_every_variant_is_scored_on_the_clips_all_enabled_audio_stores_hold(project):
    import pyarrow.parquet as pq

    from pipeline.params import load_params
    from pipeline.stages import MUSICNN_STORE, musicnn_features, train

    musicnn_features.run(load_params())
    table = pq.read_table(MUSICNN_STORE)
    pq.write_table(
        table.filter(pq.read_table(MUSICNN_STORE).column("clip_id").to_numpy() != "demo_00003"), MUSICNN_STORE
    )
    train.run(load_params(), "logreg", "audio")  # reads the descriptors only, yet leaves out what musicnn lacks
    metrics = json.loads((Path("models") / "logreg-audio" / "metrics.json").read_text())
    assert metrics["n_clips"] == 39 and metrics["n_excluded"] == 1
    assert metrics["params"]["train"]["audio_sets"] == ["descriptors"]


def test_musicnn_variants_are_skipped_when_musicnn_is_disabled(project):
    from pipeline.params import load_params
    from pipeline.reporting import load_skipped
    from pipeline.stages import musicnn_features, train
    from tests.conftest import write_params

    write_params(project, {"musicnn": {"enabled": False}})
    musicnn_features.run(load_params())  # an empty store, no weights needed
    train.run(load_params(), "lgbm", "concat", ["musicnn"])
    assert load_skipped("models") == {
        "lgbm@musicnn-concat": "its audio sets need musicnn, and musicnn.enabled is false"
    }
    train.run(load_params(), "logreg", "audio")  # the others run on every clip
    assert json.loads((Path("models") / "logreg-audio" / "metrics.json").read_text())["n_clips"] == 40
    from pipeline.reporting import data_summary, load_runs

    summary = data_summary(load_runs("models"), load_skipped("models"))
    assert "1 variants skipped: its audio sets need musicnn, and musicnn.enabled is false" in summary


def test_audio_sets_outside_the_shared_clip_set_are_refused(project):
    from pipeline.params import load_params
    from pipeline.stages import train

    with pytest.raises(ValueError, match=r"--audio-sets \['essentia'\]: every variant is scored on the clips"):
        train.run(load_params(), "logreg", "audio", ["essentia"])
