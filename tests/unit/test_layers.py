"""The layers stay one-way: the pure core imports no I/O library and renders nothing, reports may import the core
(never the reverse), adapters never reach up into use cases."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Pure libraries the core may use: snowballstemmer stems words when reading labels out of answers
# (shared.domain.answers.prose); toktok counts tokens with vocabularies compiled into its extension (no files, no
# network); jsonschema checks an answer against the schema it was asked in (shared.domain.answers.reading; no remote
# $refs there); html5lib parses a HyperText page from a string, as a browser would (shared.domain.answers.html_spans);
# Pillow's Image and ImageDraw fill a mask in memory, numpy holds it and the SDK's brush module encodes it
# (shared.domain.answers.masks).
DOMAIN_THIRD_PARTY = {
    "pydantic",
    "pydantic_settings",
    "defusedxml",
    "label_studio_sdk.label_interface",
    "snowballstemmer",
    "toktok",
    "jsonschema",
    "html5lib",
    "PIL.Image",
    "PIL.ImageDraw",
    "numpy",
    "label_studio_sdk.converter.brush",
}
IO_STDLIB = {"socket", "ssl", "http", "urllib.request", "subprocess", "ftplib", "smtplib", "asyncio", "selectors"}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    """Every module of the package, its subpackages' included (rglob walks the whole tree)."""
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def path_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def allowed_in_domain(name: str) -> bool:
    top = name.split(".")[0]
    if name == "__future__" or name == "shared.domain" or name.startswith("shared.domain."):
        return True
    if top in sys.stdlib_module_names:
        return not any(name == io or name.startswith(io + ".") for io in IO_STDLIB)
    return any(name == allowed or name.startswith(allowed + ".") for allowed in DOMAIN_THIRD_PARTY)


def allowed_in_reports(name: str) -> bool:
    """Reports render the core's results: they may import the core and each other, and do no more I/O than it."""
    return name == "shared.reports" or name.startswith("shared.reports.") or allowed_in_domain(name)


@pytest.mark.parametrize("path", modules("shared.domain"), ids=path_id)
def test_the_domain_does_no_io(path: Path) -> None:
    offending = sorted(name for name in imports_of(path) if not allowed_in_domain(name))
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}: the domain package does no I/O"


@pytest.mark.parametrize("path", modules("shared.reports"), ids=path_id)
def test_reports_import_the_core_and_do_no_io(path: Path) -> None:
    offending = sorted(name for name in imports_of(path) if not allowed_in_reports(name))
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}: reports render the core, without I/O"


@pytest.mark.parametrize("package", ["shared.domain", "shared.reports"])
def test_every_folder_is_a_walked_package(package: str) -> None:
    """The rules above cover the subpackages: each folder is a package, and each of its modules is walked."""
    root = ROOT / package.replace(".", "/")
    folders = [root, *(path for path in root.rglob("*") if path.is_dir() and path.name != "__pycache__")]
    assert [folder for folder in folders if not (folder / "__init__.py").is_file()] == []
    walked = set(modules(package))
    assert all(set(folder.glob("*.py")) <= walked for folder in folders)
    if package == "shared.domain":
        assert len(folders) > 1, "the core is grouped in subpackages, and the walk reaches them"


@pytest.mark.parametrize("path", modules("shared.adapters"), ids=path_id)
def test_adapters_do_not_reach_up(path: Path) -> None:
    upward = ("shared.predictor", "shared.services", "shared.dispatch", "api", "worker", "cli")
    offending = sorted(name for name in imports_of(path) if name.split(".")[0] in upward or name.startswith(upward))
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}: adapters depend on the domain only"


def test_the_rule_catches_an_io_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import redis\nfrom urllib.request import urlopen\nfrom shared.adapters.store import Store\n")
    assert sorted(name for name in imports_of(sample) if not allowed_in_domain(name)) == [
        "redis",
        "shared.adapters.store",
        "urllib.request",
    ]


def test_the_rule_catches_the_core_importing_a_report(tmp_path: Path) -> None:
    """The core renders nothing: a report imported from the core (even from a subpackage) breaks the rule."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from shared.reports.evaluation_html import render_html\nfrom shared.domain.evaluation.scoring import compare\n"
    )
    assert [name for name in imports_of(sample) if not allowed_in_domain(name)] == ["shared.reports.evaluation_html"]
    assert [name for name in imports_of(sample) if not allowed_in_reports(name)] == []
