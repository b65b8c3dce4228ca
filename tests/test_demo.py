import numpy as np
import pandas as pd
import soundfile as sf

from pipeline.datasets.demo import QUADRANTS, draw_latents, generate_corpus, make_clip, render_audio, write_lyric


def test_same_seed_same_clip_and_different_clips_differ():
    a1, y1 = make_clip(3, seed=7, sr=8000, duration_s=1.0, contradiction_rate=0.1)
    a2, y2 = make_clip(3, seed=7, sr=8000, duration_s=1.0, contradiction_rate=0.1)
    _, yb = make_clip(4, seed=7, sr=8000, duration_s=1.0, contradiction_rate=0.1)
    _, yc = make_clip(3, seed=8, sr=8000, duration_s=1.0, contradiction_rate=0.1)
    assert a1 == a2 and np.array_equal(y1, y2)
    assert not np.array_equal(y1, yb) and not np.array_equal(y1, yc)


def test_clip_shape_range_and_label_cycle():
    clips = [make_clip(i, 0, 8000, 1.5, 0.0) for i in range(8)]
    assert [c.label for c, _ in clips] == ["Q1", "Q2", "Q3", "Q4"] * 2
    for clip, y in clips:
        assert y.dtype == np.float32 and y.shape == (12000,)
        assert np.all(np.isfinite(y)) and 0.01 < np.max(np.abs(y)) <= 1.0
        v_sign, a_sign = QUADRANTS[clip.label]
        assert np.sign(clip.valence) == v_sign and np.sign(clip.arousal) == a_sign
        assert len(clip.text.splitlines()) == 4


def test_audio_cues_follow_arousal_and_valence():
    rng = np.random.default_rng(0)
    high = [render_audio(0.0, 0.8, rng, 8000, 0.5)[1] for _ in range(60)]
    low = [render_audio(0.0, -0.8, rng, 8000, 0.5)[1] for _ in range(60)]
    assert np.mean([c["tempo_bpm"] for c in high]) > np.mean([c["tempo_bpm"] for c in low]) + 40
    happy = [render_audio(0.9, 0.0, rng, 8000, 0.5)[1]["mode"] for _ in range(60)]
    sad = [render_audio(-0.9, 0.0, rng, 8000, 0.5)[1]["mode"] for _ in range(60)]
    assert happy.count("major") > 45 and sad.count("major") < 15


def test_lyrics_carry_valence_words():
    from pipeline.datasets.demo import NEGATIVE_WORDS, POSITIVE_WORDS

    rng = np.random.default_rng(1)

    def balance(valence):
        words = " ".join(write_lyric(valence, 0.5, rng) for _ in range(50)).split()
        return sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)

    assert balance(0.8) > 50 and balance(-0.8) < -50


def test_latent_magnitudes_overlap_near_the_axes():
    rng = np.random.default_rng(2)
    draws = np.array([draw_latents(rng, "Q1") for _ in range(500)])
    assert (draws > 0).all() and (draws <= 1).all()
    assert (draws < 0.15).mean() > 0.05  # some clips are genuinely ambiguous


def test_generate_corpus_writes_wavs_and_manifest(tmp_path):
    manifest = generate_corpus(tmp_path, n_clips=8, duration_s=1.0, sr=16000, seed=3, n_jobs=1)
    on_disk = pd.read_csv(tmp_path / "manifest.csv")
    assert list(on_disk["clip_id"]) == list(manifest["clip_id"]) == [f"demo_{i:05d}" for i in range(8)]
    assert list(on_disk.columns[:4]) == ["clip_id", "audio_path", "text", "label"]
    info = sf.info(tmp_path / on_disk["audio_path"][0])
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")


def test_relative_root_with_worker_processes(tmp_path, monkeypatch):
    # workers keep the cwd they started in; a relative root must still land under this cwd
    monkeypatch.chdir(tmp_path)
    generate_corpus("corpus", n_clips=4, duration_s=0.5, sr=8000, seed=0, n_jobs=2)
    assert sorted(p.name for p in (tmp_path / "corpus" / "audio").iterdir()) == [f"demo_{i:05d}.wav" for i in range(4)]
