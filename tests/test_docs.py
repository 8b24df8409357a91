"""The README stays short and the documentation's links hold: every relative link of README.md
and docs/ names a file that exists, and mkdocs.yml's nav lists every page there is (the site
itself is built with warnings as errors by `make docs`, which `make test` runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def documentation_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text outside code, less URLs and in-page anchors."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = LINK.findall(prose) + HTML_LINK.findall(prose)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and
            not t.startswith("#")]


def test_relative_links_finds_what_it_should() -> None:
    text = ("[a](docs/install.md#extras) ![b](docs/rate.png) [c](https://x.org) [d](#top)\n"
            "`[e](not/a/link.md)`\n```\n[f](in/code.md)\n```\n<img src=\"p.png\">")
    assert relative_links(text) == ["docs/install.md#extras", "docs/rate.png", "p.png"]


def test_the_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/")


@pytest.mark.parametrize("page", documentation_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path = target.split("#")[0].split("?")[0]
        if path and not (page.parent / path).resolve().exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: links to missing files: {broken}"


def _nav_pages(entry: object) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in _nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in _nav_pages(value)]
    return []


def test_the_nav_lists_every_page_and_only_pages_that_exist() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    excluded = [line.strip().rstrip("/") for line in config.get("exclude_docs", "").splitlines()
                if line.strip()]
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
                   if not any(str(p.relative_to(DOCS)).startswith(f"{e}/") for e in excluded))
    assert [p for p in nav if not (DOCS / p).exists()] == []
    assert sorted(nav) == pages
