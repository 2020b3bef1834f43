"""The reference in docs/ names every option, ini key and CLI verb the code declares, and
its links between pages resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import perfcheck.plugin as plugin
from perfcheck.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_every_pytest_option_is_in_docs_options() -> None:
    text = (DOCS / "options.md").read_text()
    options = [v for k, v in vars(plugin).items() if k.startswith("OPT_")]
    assert options
    assert [o for o in options if f"`{o}" not in text] == []


def test_every_ini_key_is_in_docs_options() -> None:
    text = (DOCS / "options.md").read_text()
    source = Path(plugin.__file__).read_text()
    keys = re.findall(r'addini\(\s*"(perfcheck_\w+)"', source)
    assert keys
    assert [k for k in keys if f"`{k}`" not in text] == []


def test_every_cli_verb_is_in_docs_cli() -> None:
    text = (DOCS / "cli.md").read_text()
    assert [s.name for s in SUBCOMMANDS if f"perfcheck {s.name}" not in text] == []


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=str)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name}: link to {target}"
