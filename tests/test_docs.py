"""The documentation stays usable: every relative link resolves, the README stays short and opens with the
two set-up commands, and bench/README.md is what bench/render_readme.py makes of bench/results/*.json."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
MAX_README_LINES = 150

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.S)  # within one paragraph
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def blank_code(text: str) -> str:
    """``text`` with fenced blocks and code spans blanked out (newlines kept, so line numbers still hold)."""

    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    return CODE_SPAN.sub(blank, FENCE.sub(blank, text))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lowercased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file: heading slugs (repeats get -1, -2, ...) and explicit HTML anchors."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for _, heading in HEADING.findall(text):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every inline link, image and reference definition outside code."""
    text = blank_code(path.read_text(encoding="utf-8"))
    found = []
    for pattern in (LINK, REFERENCE):
        for match in pattern.finditer(text):
            target = match.group(1).strip("<>")
            found.append((text.count("\n", 0, match.start()) + 1, target))
    return sorted(found)


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """One message per relative link of ``path`` that names a missing file (or one outside ``root``)
    or a missing ``#anchor`` of a Markdown file. Absolute URLs (``https:``, ``mailto:``) are not checked."""
    problems = []
    for line, target in links(path):
        if not target or SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        where = f"{path.relative_to(root)}:{line}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where}: leaves the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            problems.append(f"{where}: no heading with that anchor in {dest.name}")
    return problems


def readme_problems(text: str) -> list[str]:
    """What keeps ``text`` from being the README: too long, or not opening with ``make repro`` and ``make test``."""
    problems = []
    if len(text.splitlines()) > MAX_README_LINES:
        problems.append(f"{len(text.splitlines())} lines, more than {MAX_README_LINES}")
    block = FENCE.search(text)
    if block is None:
        return [*problems, "no code block"]
    commands = [line.split("#")[0].strip() for line in block.group(0).splitlines()[1:-1]]
    problems += [f"the first code block lacks `{c}`" for c in ("make repro", "make test") if c not in commands]
    if "\n## " in text[: block.start()]:
        problems.append("a section comes before the set-up commands")
    return problems


def load_renderer():
    """bench/render_readme.py as a module (bench/ is not a package)."""
    if "render_readme" not in sys.modules:
        spec = importlib.util.spec_from_file_location("render_readme", REPO / "bench" / "render_readme.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return sys.modules["render_readme"]


# --- the repository's pages ---------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert page.exists(), f"{page} is missing"
    assert broken_links(page) == []


def test_readme_is_short_and_opens_with_the_two_commands():
    assert readme_problems(README.read_text(encoding="utf-8")) == []


def test_readme_links_the_committed_reports_and_every_docs_page():
    targets = {target.partition("#")[0] for _, target in links(README)}
    for report in ("reports/leaderboard.md", "reports/index.html"):
        assert report in targets, f"README.md does not link {report}"
        assert (REPO / report).is_file(), f"{report} is not committed"
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in targets, f"README.md does not link docs/{page.name}"


def test_bench_readme_is_up_to_date():
    run = subprocess.run(
        [sys.executable, "bench/render_readme.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr + "\nrun: python bench/render_readme.py"


# --- the checkers themselves can fail -----------------------------------------------


def test_link_checker_reports_missing_files_anchors_and_escapes(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Same\n\n## Same\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine too](other.md#same-1) [self](#page) ![img](other.md)\n"
        "[gone](missing.md)\n"
        "[bad anchor](other.md#nowhere)\n"
        "[bad self anchor](#nowhere)\n"
        "[out](../../outside.md) [web](https://example.org/x.md) [mail](mailto:a@b.c)\n"
        "[wrapped\nlink text](missing2.md)\n"
        "[ref]: missing3.md\n"
        "`[in code](missing4.md)`\n\n"
        "```\n[in a fence](missing5.md)\n```\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 6, problems
    for expected in (
        "docs/page.md:4: missing.md: no such file",
        "docs/page.md:5: other.md#nowhere: no heading",
        "docs/page.md:6: #nowhere: no heading",
        "docs/page.md:7: ../../outside.md: leaves the repository",
        "docs/page.md:8: missing2.md: no such file",
        "docs/page.md:10: missing3.md: no such file",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("What happens to bad input", "what-happens-to-bad-input"),
        ("Audio descriptors (`features/audio.parquet`)", "audio-descriptors-featuresaudioparquet"),
        ("C++ & Python!", "c--python"),
        ("snake_case and *bold* [link](x.md)", "snake_case-and-bold-link"),
        ("Über café", "über-café"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_readme_check_fails_on_a_long_readme_without_the_commands():
    text = "# x\n\n## Intro\n\n```sh\nmake repro\n# make test\n```\n" + "line\n" * MAX_README_LINES
    assert readme_problems(text) == [
        f"{MAX_README_LINES + 8} lines, more than {MAX_README_LINES}",
        "the first code block lacks `make test`",
        "a section comes before the set-up commands",
    ]
    assert readme_problems("# x\n\nno code\n") == ["no code block"]


def test_render_check_fails_when_a_result_changes(tmp_path):
    render = load_renderer()
    results = tmp_path / "results"
    shutil.copytree(REPO / "bench" / "results", results)
    readme = tmp_path / "README.md"
    args = ["--results", str(results), "--output", str(readme)]
    assert render.main(["--check", *args]) == 1  # no README yet
    assert render.main(args) == 0 and render.main(["--check", *args]) == 0
    data = json.loads((results / "long_clip.json").read_text())
    data["uncapped_s"] = 99.9
    (results / "long_clip.json").write_text(json.dumps(data))
    assert render.main(["--check", *args]) == 1
    render.main(args)
    assert "99.9 s" in readme.read_text()


def test_render_shows_an_undescribed_result_as_a_table(tmp_path):
    render = load_renderer()
    (tmp_path / "new_bench.json").write_text(json.dumps({"clips_per_s": 12.3456, "machine": "a laptop"}))
    text = render.render(tmp_path)
    assert "## new_bench" in text and "| `clips_per_s` | 12.35 |" in text and "a laptop" in text
