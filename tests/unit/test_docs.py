"""The newcomer's tour stays true: the README's Layout names every folder and package, and every link between the
project's Markdown files (and to a section of one) leads somewhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked(pattern: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in listed.stdout.splitlines()]


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_layout_names_every_top_level_folder_and_package() -> None:
    layout = layout_section()
    folders = {path.relative_to(ROOT).parts[0] for path in tracked("*") if len(path.relative_to(ROOT).parts) > 1}
    packages = {
        str(path.parent.relative_to(ROOT))
        for path in tracked("*/__init__.py")
        if path.parent.parent.name in ("shared", "domain") or path.parent.parent == ROOT
    }
    unnamed = sorted(
        name for name in folders | packages if f"`{name}/`" not in layout and f"`{Path(name).name}/`" not in layout
    )
    assert unnamed == [], f"README's Layout does not say what these folders hold: {unnamed}"


@pytest.mark.parametrize("page", tracked("*.md"), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_between_the_docs_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{target}: no such section")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"
