"""The layers stay one-way: the pure core imports no I/O library, adapters never reach up into use cases."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Pure libraries the core may use: snowballstemmer stems words when reading labels out of answers
# (shared.domain.answers); toktok counts tokens with vocabularies compiled into its extension (no files, no network);
# jsonschema checks an answer against the schema it was asked in (shared.domain.reading; no remote $refs there);
# html5lib parses a HyperText page from a string, as a browser would (shared.domain.html_spans); Pillow's Image and
# ImageDraw fill a mask in memory, numpy holds it and the SDK's brush module encodes it (shared.domain.masks).
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
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def allowed_in_domain(name: str) -> bool:
    top = name.split(".")[0]
    if name == "__future__" or name.startswith("shared.domain"):
        return True
    if top in sys.stdlib_module_names:
        return not any(name == io or name.startswith(io + ".") for io in IO_STDLIB)
    return any(name == allowed or name.startswith(allowed + ".") for allowed in DOMAIN_THIRD_PARTY)


@pytest.mark.parametrize("path", modules("shared.domain"), ids=lambda path: path.name)
def test_the_domain_does_no_io(path: Path) -> None:
    offending = sorted(name for name in imports_of(path) if not allowed_in_domain(name))
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}: the domain package does no I/O"


@pytest.mark.parametrize("path", modules("shared.adapters"), ids=lambda path: path.name)
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
