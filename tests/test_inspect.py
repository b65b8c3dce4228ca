"""``mmer inspect`` (and the params check) load without the feature, model or training libraries."""

import json
import subprocess
import sys

import pandas as pd
import pyarrow as pa

from pipeline.store import write_store
from tests.conftest import REPO

HEAVY = ("librosa", "torch", "lightgbm")


def test_inspect_imports_no_heavy_library(tmp_path):
    path = tmp_path / "audio.parquet"
    df = pd.DataFrame({"clip_id": ["a", "b"], "mfcc_00_mean": [0.5, float("nan")]})
    schema = pa.schema([("clip_id", pa.string()), ("mfcc_00_mean", pa.float32())])
    write_store(df, path, schema, {"store": "audio", "feature_names": ["mfcc_00_mean"]})
    script = (
        "import json, sys\n"
        "from pipeline.cli import main\n"
        f"code = main(['inspect', {str(path)!r}])\n"
        "import pipeline.params\n"  # the settings of every stage: feature configs, no extraction code run
        f"print(json.dumps([code, sorted(set({HEAVY!r}) & set(sys.modules))]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    lines = run.stdout.splitlines()
    assert "audio.parquet: 2 rows x 2 columns" in lines[0] and '"store": "audio"' in run.stdout
    assert json.loads(lines[-1]) == [0, []], "mmer inspect imported " + lines[-1]
