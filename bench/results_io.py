"""What every benchmark does with its results: print a table, optionally write JSON."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, json_path: Path | None) -> None:
    """Print ``result`` as aligned ``key  value`` lines; write it as JSON to ``json_path`` if given."""
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
