"""Stage ``report``: models/*/metrics.json -> reports/{metrics.json, leaderboard.md, leaderboard.csv}."""

from __future__ import annotations

from pipeline.reporting import collect_metrics, data_summary, leaderboard, leaderboard_markdown
from pipeline.stages import MODELS, REPORTS
from pipeline.store import atomic_path, write_json, write_text


def run() -> None:
    """Aggregate every trained variant and print the top of the leaderboard."""
    metrics = collect_metrics(MODELS)
    table = leaderboard(metrics)
    write_json(metrics, REPORTS / "metrics.json")
    summary = data_summary(MODELS)
    write_text(leaderboard_markdown(table, summary), REPORTS / "leaderboard.md")
    with atomic_path(REPORTS / "leaderboard.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    print(leaderboard_markdown(table.head(10), summary))
