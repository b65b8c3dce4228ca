"""Saving and loading fitted learners without arbitrary pickles.

Each learner writes a folder with a ``learner.json`` naming its type; torch weights go
to a ``state_dict`` file read with ``weights_only=True``, LightGBM boosters to their
native text format. Scalers, PCA projections and logistic regressions go to a
``.npz`` of their fitted arrays plus their parameters as JSON (:func:`dump_fitted`):
no code runs on loading, only the types of :data:`FITTED_TYPES` are rebuilt, and equal
models give byte-identical files. Other scikit-learn parts (the TF-IDF learner's
vectoriser) go to skops files that are loaded only when skops trusts every type in
them by default: a file naming any other type or function, e.g. a
``FunctionTransformer(func=eval)``, is refused before anything in it is built.
:func:`pipeline.models.load_learner` reads a learner's folder back.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store import atomic_path

# The scikit-learn types dump_fitted writes and load_fitted rebuilds, with their modules.
FITTED_TYPES = {
    "StandardScaler": "sklearn.preprocessing",
    "PCA": "sklearn.decomposition",
    "LogisticRegression": "sklearn.linear_model",
    "Ridge": "sklearn.linear_model",
}
_EPOCH = (1980, 1, 1, 0, 0, 0)  # a fixed zip timestamp, so equal models give equal bytes


def is_fitted_type(part: Any) -> bool:
    """Whether ``part`` is exactly a scikit-learn class of :data:`FITTED_TYPES` (no subclass, no namesake)."""
    kind = type(part).__name__
    return kind in FITTED_TYPES and type(part) is getattr(importlib.import_module(FITTED_TYPES[kind]), kind)


def dump_fitted(parts: dict[str, Any], path: str | Path) -> None:
    """Write fitted scikit-learn parts (types in :data:`FITTED_TYPES`) as arrays + JSON in one zip, atomically.

    Each part keeps its constructor parameters and its fitted attributes (names ending
    in ``_``): arrays as ``.npy`` members, scalars in ``meta.json``.
    """
    meta, arrays = {}, {}
    for name, part in parts.items():
        kind = type(part).__name__
        if not is_fitted_type(part):
            where = type(part).__module__
            raise TypeError(f"dump_fitted writes scikit-learn's {sorted(FITTED_TYPES)}, not {where}.{kind} ({name!r})")
        scalars, array_names = {}, []
        for attr, value in sorted(vars(part).items()):
            if not attr.endswith("_") or attr.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[f"{name}/{attr}.npy"] = value.astype(str) if value.dtype == object else value
                array_names.append(attr)
            else:
                scalars[attr] = value.item() if isinstance(value, np.generic) else value
        meta[name] = {"type": kind, "params": part.get_params(deep=False), "scalars": scalars, "arrays": array_names}
    dump_arrays(arrays, path, {"meta.json": json.dumps(meta, indent=1, sort_keys=True)})


def dump_arrays(arrays: dict[str, np.ndarray], path: str | Path, texts: dict[str, str] | None = None) -> None:
    """An ``.npz`` readable by ``np.load`` (plus text members), atomically and byte-identical for equal arrays."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for member, text in (texts or {}).items():
            archive.writestr(zipfile.ZipInfo(member, _EPOCH), text)
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            member = name if name.endswith(".npy") else f"{name}.npy"
            archive.writestr(zipfile.ZipInfo(member, _EPOCH), buffer.getvalue())


def load_fitted(path: str | Path) -> dict[str, Any]:
    """The parts :func:`dump_fitted` wrote, rebuilt; refuses a file naming a type outside :data:`FITTED_TYPES`."""
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("meta.json"))
        parts = {}
        for name, entry in meta.items():
            if entry["type"] not in FITTED_TYPES:
                raise ValueError(
                    f"{path}: refusing to build {entry['type']!r} ({name!r}); mmer writes only {sorted(FITTED_TYPES)}, "
                    "so this file was not written by mmer or was altered"
                )
            part = getattr(importlib.import_module(FITTED_TYPES[entry["type"]]), entry["type"])(**entry["params"])
            for attr, value in entry["scalars"].items():
                setattr(part, attr, value)
            for attr in entry["arrays"]:
                setattr(part, attr, np.load(io.BytesIO(archive.read(f"{name}/{attr}.npy")), allow_pickle=False))
            parts[name] = part
    return parts


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
