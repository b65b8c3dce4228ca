"""Reference outputs of the original musicnn TensorFlow graph, for tests/test_musicnn.py.

Run once, in a separate environment with TensorFlow (the tests never need it):

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2"
    /tmp/tfenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfenv/bin/python tests/data/musicnn/make_reference.py

It builds each model with the wheel's own ``musicnn.models.define_model``, restores
the wheel's checkpoint with ``tf.compat.v1.train.Saver`` and writes the outputs for
the fixed inputs of :func:`reference_inputs` to ``reference_<model>.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("MSD_musicnn", "MTT_musicnn")
OUTPUTS = ("tags", "penultimate", "mean_pool", "max_pool")


def reference_inputs() -> np.ndarray:
    """Three (187, 96) log-mel patches: noise, a harmonic stack with onsets, and silence."""
    rng = np.random.default_rng(2019)
    noise = rng.uniform(0.0, 4.0, size=(187, 96))
    frames, bands = np.meshgrid(np.arange(187), np.arange(96), indexing="ij")
    tonal = 3.0 * np.exp(-(((bands % 12) - 6) ** 2) / 4.0) * (1.0 + 0.5 * ((frames % 23) < 3)) + 0.2
    silence = np.zeros((187, 96))
    return np.stack([noise, tonal, silence]).astype(np.float32)


def main() -> None:
    import importlib.util

    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    folder = Path(next(iter(importlib.util.find_spec("musicnn").submodule_search_locations)))
    for name in MODELS:
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
            is_training = tf.compat.v1.placeholder(tf.bool)
            logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, name, 50)
            tags = tf.nn.sigmoid(logits)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, f"{folder}/{name}/")
            out = sess.run(
                [tags, penultimate, mean_pool, max_pool], feed_dict={x: reference_inputs(), is_training: False}
            )
        np.savez_compressed(HERE / f"reference_{name}.npz", **dict(zip(OUTPUTS, out)), tensorflow=tf.__version__)
        print(name, [o.shape for o in out])


if __name__ == "__main__":
    main()
