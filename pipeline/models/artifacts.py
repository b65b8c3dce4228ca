"""Saving and loading fitted learners without arbitrary pickles.

Each learner writes a folder with a ``learner.json`` naming its type; torch weights go
to a ``state_dict`` file read with ``weights_only=True``, LightGBM boosters to their
native text format, scikit-learn parts to skops files that are loaded only when skops
trusts every type in them by default (scikit-learn estimators, numpy arrays and
dtypes, plain containers): a file naming any other type or function, e.g. a
``FunctionTransformer(func=eval)``, is refused before anything in it is built.
:func:`pipeline.models.load_learner` reads a learner's folder back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.store import atomic_path


def dump_skops(obj: Any, path: str | Path) -> None:
    """Write ``obj`` (scikit-learn estimators, arrays, dicts of them) as a skops file, atomically."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(obj, tmp)


def load_skops(path: str | Path) -> Any:
    """Read a skops file, refusing it when it names any type skops does not trust by default."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    if untrusted:
        raise ValueError(
            f"{path}: refusing to load untrusted types {untrusted}; mmer writes only scikit-learn estimators "
            "and arrays, so this file was not written by mmer or was altered"
        )
    return sio.load(path)


def write_config(config: dict, folder: str | Path) -> None:
    """A learner folder's ``learner.json``."""
    with atomic_path(Path(folder) / "learner.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))


def read_config(folder: str | Path) -> dict:
    """A learner folder's ``learner.json``."""
    path = Path(folder) / "learner.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; is {folder} a folder written by a learner's save()?")
    return json.loads(path.read_text())
