"""Synthetic demo corpus: short music-like clips plus one lyric per clip.

The corpus exists so the whole pipeline runs offline on a fresh machine. Its design
follows what music psychology reports about emotion cues (Juslin & Laukka 2004;
Eerola & Vuoskoski 2013), in Russell's valence/arousal plane:

- **audio** carries arousal strongly (tempo, loudness, note density, attack
  sharpness, spectral brightness, percussion) and valence weakly (major vs minor
  mode, consonance, register);
- **text** carries valence strongly (positive vs negative word pools) and arousal
  weakly (energetic vs calm words, mixed with neutral filler);
- every clip draws its own latent (valence, arousal) with overlap across quadrants,
  a random key, instrument timbre and noise level, and a small share of lyrics
  contradict the audio.

So audio alone mostly separates high from low arousal, text alone mostly separates
positive from negative valence, and only a fused model sees both axes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.audio_io import write_wav
from pipeline.executor import ClipTask, map_clips
from pipeline.store import atomic_path

#: Russell quadrant -> (valence sign, arousal sign).
QUADRANTS: dict[str, tuple[int, int]] = {
    "Q1": (+1, +1),  # happy, exuberant
    "Q2": (-1, +1),  # angry, tense
    "Q3": (-1, -1),  # sad, depressed
    "Q4": (+1, -1),  # calm, content
}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord roots as scale degrees (0-based): I-V-vi-IV for major, i-VI-III-VII for minor.
PROGRESSIONS = {"major": (0, 4, 5, 3), "minor": (0, 5, 2, 6)}

POSITIVE_WORDS = (
    "sunshine",
    "smile",
    "love",
    "golden",
    "bright",
    "laughter",
    "hope",
    "sweet",
    "warm",
    "shine",
    "joy",
    "kiss",
    "wonderful",
    "free",
    "heaven",
    "lucky",
    "bloom",
)
NEGATIVE_WORDS = (
    "tears",
    "broken",
    "alone",
    "grey",
    "cold",
    "lost",
    "pain",
    "goodbye",
    "ashes",
    "empty",
    "lonely",
    "darkness",
    "sorrow",
    "bleeding",
    "regret",
    "hollow",
    "grave",
)
ENERGETIC_WORDS = (
    "run",
    "fire",
    "dance",
    "loud",
    "wild",
    "storm",
    "scream",
    "racing",
    "burning",
    "jump",
    "thunder",
    "electric",
    "fast",
    "shout",
)
CALM_WORDS = (
    "slow",
    "quiet",
    "drift",
    "soft",
    "sleep",
    "still",
    "gentle",
    "breathe",
    "calm",
    "whisper",
    "dreaming",
    "fading",
    "rest",
    "hush",
)
NEUTRAL_WORDS = (
    "window",
    "car",
    "street",
    "coffee",
    "paper",
    "train",
    "city",
    "door",
    "table",
    "phone",
    "morning",
    "letter",
    "river",
    "corner",
    "station",
    "radio",
    "road",
)
OPENERS = (
    "I remember",
    "we walk through",
    "she said",
    "under the",
    "every night",
    "in the morning",
    "you told me",
    "down by the",
    "they call it",
    "here comes the",
)
ENDINGS = (
    "by the river",
    "on the radio",
    "in this town",
    "tonight",
    "again and again",
    "down the road",
    "at the station",
    "all day long",
    "like before",
    "on my way",
)


@dataclass(frozen=True)
class DemoClip:
    """Everything the generator decided for one clip (all plain values)."""

    clip_id: str
    label: str
    valence: float
    arousal: float
    tempo_bpm: float
    mode: str
    key: int
    text: str
    text_contradicts: bool


def draw_latents(rng: np.random.Generator, label: str) -> tuple[float, float]:
    """Latent (valence, arousal) in [-1, 1] with the signs of `label`'s quadrant.

    Magnitudes are drawn near 0.45 with a wide spread, so clips close to an axis are
    genuinely ambiguous.
    """
    v_sign, a_sign = QUADRANTS[label]
    v_mag, a_mag = np.clip(np.abs(rng.normal(0.45, 0.3, size=2)), 0.02, 1.0)
    return float(v_sign * v_mag), float(a_sign * a_mag)


def _midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def _note(
    freq: float,
    dur_s: float,
    sr: int,
    harmonic_amps: np.ndarray,
    attack_s: float,
    vibrato_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One additive-synthesis note with an attack/exponential-decay envelope."""
    n = max(int(dur_s * sr), 8)
    t = np.arange(n) / sr
    phase0 = rng.uniform(0, 2 * np.pi)
    vib = 1.0 + 0.004 * np.sin(2 * np.pi * vibrato_hz * t)
    tone = np.zeros(n)
    for k, amp in enumerate(harmonic_amps, start=1):
        f = freq * k
        if f >= sr / 2:
            break
        tone += amp * np.sin(2 * np.pi * f * t * vib + k * phase0)
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    decay = np.exp(-t / max(dur_s * 0.6, 1e-3))
    release = np.clip((dur_s - t) / 0.01, 0.0, 1.0)
    return tone * attack * decay * release


def render_audio(
    valence: float,
    arousal: float,
    rng: np.random.Generator,
    sr: int,
    duration_s: float,
) -> tuple[np.ndarray, dict]:
    """Render a music-like clip whose cues follow (valence, arousal).

    Returns the waveform (float32, peak <= 1) and the drawn musical choices.
    """
    n = round(duration_s * sr)
    # Audio perceives arousal through a little noise and valence through a lot.
    a = float(np.clip(arousal + rng.normal(0, 0.12), -1.2, 1.2))
    v = float(0.8 * valence + rng.normal(0, 0.25))

    tempo = float(np.clip(100 + 38 * a + rng.normal(0, 10), 50, 190))
    beat_s = 60.0 / tempo
    notes_per_beat = int(2 ** np.clip(round(1.0 + 1.3 * a + rng.normal(0, 0.4)), 0, 2))
    attack_s = float(np.clip(0.03 * np.exp(-1.8 * a) + rng.uniform(0, 0.01), 0.002, 0.2))
    rolloff = float(np.clip(1.7 - 0.7 * a + rng.normal(0, 0.25), 0.6, 3.0))
    gain_db = -16 + 6 * a + rng.normal(0, 2.0)

    mode = "major" if rng.random() < 1 / (1 + np.exp(-4.0 * v)) else "minor"
    scale = np.array(MAJOR if mode == "major" else MINOR)
    key = int(rng.integers(0, 12))
    root_midi = 52 + key - 12 * (key > 6) + round(3 * float(np.clip(v, -1, 1)))
    dissonance = v < -0.2 and rng.random() < 0.6

    n_harm = int(rng.integers(4, 13))
    odd_even = rng.uniform(0.3, 1.0)
    harm = np.array([(1.0 if k % 2 else odd_even) * k**-rolloff for k in range(1, n_harm + 1)])
    vibrato_hz = rng.uniform(3, 6)

    y = np.zeros(n + sr)
    progression = PROGRESSIONS[mode]
    step = beat_s / notes_per_beat
    t, i = 0.0, 0
    while t < duration_s:
        bar = int(t / (4 * beat_s))
        degree = progression[bar % len(progression)]
        if (i % (4 * notes_per_beat)) == 0:  # bass + chord pad at each bar
            chord = [scale[(degree + d) % 7] + 12 * ((degree + d) // 7) for d in (0, 2, 4)]
            if dissonance:
                chord.append(chord[0] + 6)  # tritone
            for c in chord:
                s0 = int(t * sr)
                note = _note(_midi_to_hz(root_midi - 12 + c), 4 * beat_s, sr, harm[:4], 0.02, vibrato_hz, rng)
                y[s0 : s0 + len(note)] += 0.25 * note[: len(y) - s0]
        chord_tone = (degree + 2 * int(rng.integers(0, 4))) % 14
        midi = root_midi + 12 + scale[chord_tone % 7] + 12 * (chord_tone // 7)
        s0 = int(t * sr)
        note = _note(_midi_to_hz(midi), step * 1.2, sr, harm, attack_s, vibrato_hz, rng)
        y[s0 : s0 + len(note)] += note[: len(y) - s0]
        t += step
        i += 1

    drums = max(a, 0.0) * rng.uniform(0.5, 1.0)
    if drums > 0.05:  # noise-burst hats on every beat, louder with arousal
        hat_len = int(0.05 * sr)
        env = np.exp(-np.arange(hat_len) / (0.01 * sr))
        for b in np.arange(0, duration_s, beat_s / 2):
            s0 = int(b * sr)
            y[s0 : s0 + hat_len] += drums * 0.6 * env * rng.normal(0, 1, hat_len)

    y = y[:n]
    y = y / (np.max(np.abs(y)) + 1e-9) * 10 ** (gain_db / 20)
    snr_db = rng.uniform(15, 35)
    y = y + rng.normal(0, 1, n) * np.sqrt(np.mean(y**2)) * 10 ** (-snr_db / 20)
    y = y / max(1.0, float(np.max(np.abs(y))))
    choices = {"tempo_bpm": tempo, "mode": mode, "key": key}
    return y.astype(np.float32), choices


def write_lyric(valence: float, arousal: float, rng: np.random.Generator, n_lines: int = 4) -> str:
    """A short lyric whose words carry valence strongly and arousal weakly."""
    p_valence_word = 0.45 + 0.4 * abs(valence)
    p_word_agrees = 0.75 + 0.25 * abs(valence)  # near-neutral clips mix both signs
    p_arousal_word = 0.06 + 0.12 * abs(arousal)
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(3):
            u = rng.random()
            if u < p_valence_word:
                agree = rng.random() < p_word_agrees
                positive = (valence > 0) == agree
                words.append(rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS))
            elif u < p_valence_word + p_arousal_word:
                words.append(rng.choice(ENERGETIC_WORDS if arousal > 0 else CALM_WORDS))
            else:
                words.append(rng.choice(NEUTRAL_WORDS))
        lines.append(f"{rng.choice(OPENERS)} {' '.join(words)} {rng.choice(ENDINGS)}")
    return "\n".join(lines)


def make_clip(
    index: int, seed: int, sr: int, duration_s: float, contradiction_rate: float
) -> tuple[DemoClip, np.ndarray]:
    """Draw and render clip `index`; depends only on (index, seed, sr, duration_s)."""
    rng = np.random.default_rng([seed, index])
    labels = list(QUADRANTS)
    label = labels[index % len(labels)]
    valence, arousal = draw_latents(rng, label)
    audio, choices = render_audio(valence, arousal, rng, sr, duration_s)
    contradicts = bool(rng.random() < contradiction_rate)
    text_v, text_a = valence, arousal
    if contradicts:  # lyric written for another quadrant
        other = labels[(labels.index(label) + int(rng.integers(1, 4))) % 4]
        text_v, text_a = draw_latents(rng, other)
    text = write_lyric(text_v, text_a, rng)
    clip = DemoClip(
        clip_id=f"demo_{index:05d}",
        label=label,
        valence=round(valence, 4),
        arousal=round(arousal, 4),
        text=text,
        text_contradicts=contradicts,
        **choices,
    )
    return clip, audio


def _render_to_file(
    index: int, seed: int, sr: int, duration_s: float, contradiction_rate: float, audio_dir: str
) -> dict:
    clip, audio = make_clip(index, seed, sr, duration_s, contradiction_rate)
    write_wav(Path(audio_dir) / f"{clip.clip_id}.wav", audio, sr)  # atomic
    return {"clip_id": clip.clip_id, "audio_path": f"audio/{clip.clip_id}.wav", **asdict(clip)}


def generate_corpus(
    root: str | Path,
    n_clips: int,
    duration_s: float,
    sr: int,
    seed: int,
    contradiction_rate: float = 0.08,
    n_jobs: int = -1,
) -> pd.DataFrame:
    """Write ``root/audio/*.wav`` and ``root/manifest.csv``; return the manifest.

    The manifest has the usual columns (``clip_id, audio_path, text, label``) plus the
    generator's latent draws (``valence, arousal, tempo_bpm, mode, key,
    text_contradicts``) so users can check what each clip was meant to express.
    """
    root = Path(root)
    audio_dir = (root / "audio").resolve()  # absolute: worker processes keep their own cwd
    audio_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        ClipTask(f"demo_{i:05d}", (i, seed, sr, duration_s, contradiction_rate, str(audio_dir))) for i in range(n_clips)
    ]
    rows, failures = map_clips(_render_to_file, tasks, n_jobs=n_jobs, stage="generate", desc="demo corpus")
    if failures:
        raise RuntimeError(f"demo corpus generation failed: {failures[0]}")
    manifest = pd.DataFrame([rows[task.clip_id] for task in tasks])
    first = ["clip_id", "audio_path", "text", "label"]
    manifest = manifest[first + [c for c in manifest.columns if c not in first]]
    with atomic_path(root / "manifest.csv") as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest
