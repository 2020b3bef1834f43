"""The package's layers import only the layers below them.

Every ``import`` in ``perfcheck/`` (function-level and ``TYPE_CHECKING`` ones included) is
read with :mod:`ast`; a module's layer is its subpackage (``perfcheck.stats.verdict`` is in
``stats``), the few top-level modules (``errors``, ``files``, ``text``) are the base.
Nothing imports ``plugin`` or ``cli``, and no two modules import each other, however
indirectly. The
subprocess tests check the same thing where it matters to users: ``perfcheck show`` and
``perfcheck report`` load neither fio, network namespaces nor probes, and importing the
package never imports bcc.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "perfcheck"

_BASE = frozenset({"base"})
_DATA = _BASE | {"model"}
_STORED = _DATA | {"store"}
_JUDGED = _STORED | {"stats"}
_MACHINE = _DATA | {"system"}
_MEASURING = _MACHINE | {"probes", "workloads"}
_BELOW_RUN = _MEASURING | _JUDGED | {"report"}

#: Each layer and the layers it may import (itself included). Two columns meet in run/:
#: the records and their judging (model, store, stats, report) never load the machine
#: side (system, probes, workloads), so ``perfcheck show`` works on any machine.
ALLOWED: dict[str, frozenset[str]] = {
    "base": _BASE,
    "model": _DATA,
    "store": _STORED,
    "stats": _JUDGED,
    "report": _JUDGED | {"report"},
    "system": _MACHINE,
    "probes": _MACHINE | {"probes"},
    "workloads": _MEASURING,
    "run": _BELOW_RUN | {"run"},
    "plugin": _BELOW_RUN | {"run", "plugin"},
    "cli": _BELOW_RUN | {"run", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module == "perfcheck.__main__":
        return "cli"
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "base"


def imported_modules(path: Path, module: str) -> set[str]:
    """The perfcheck modules ``path`` imports, by absolute name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # ``from perfcheck.stats import gate`` imports the module perfcheck.stats.gate.
            found.update(
                f"{target}.{alias.name}"
                for alias in node.names
                if (PACKAGE_DIR.parent / f"{target}.{alias.name}".replace(".", "/")).exists()
                or (
                    PACKAGE_DIR.parent / (f"{target}.{alias.name}".replace(".", "/") + ".py")
                ).exists()
            )
    return {name for name in found if name == "perfcheck" or name.startswith("perfcheck.")}


def is_module(name: str) -> bool:
    path = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = module_name(path)
        graph[module] = imported_modules(path, module) - {module}
    return graph


def test_every_module_has_a_known_layer() -> None:
    subpackages = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(ALLOWED) - {"base"}
    top_level = {p.stem for p in PACKAGE_DIR.glob("*.py")}
    assert top_level == {"__init__", "__main__", "errors", "files", "text"}


def test_layers_import_only_the_layers_below_them() -> None:
    wrong = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) not in ALLOWED[layer_of(module)]
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    # A package's __init__ importing its own modules is how packages re-export; the
    # modules importing that __init__ back would be the cycle.
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    ["from perfcheck.store import baseline", "from perfcheck.report import html, results"],
)
def test_store_and_report_load_no_workload_system_or_probe(statement: str) -> None:
    loaded = loaded_after(statement)
    assert {"perfcheck.store.baseline", "perfcheck.model.measurement"} <= loaded
    heavy = {
        name
        for name in loaded
        if name.startswith(("perfcheck.probes", "perfcheck.workloads", "perfcheck.run"))
        or name in {"perfcheck.system.netns", "perfcheck.system.targets", "bcc"}
    }
    assert heavy == set()


def test_importing_perfcheck_never_imports_bcc() -> None:
    loaded = loaded_after(
        "import perfcheck, perfcheck.plugin, perfcheck.cli, perfcheck.run.harness"
    )
    assert "perfcheck.run.harness" in loaded
    assert "bcc" not in loaded
