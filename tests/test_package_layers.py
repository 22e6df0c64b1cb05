"""Imports run one way: domain packages never import each other, io imports only errors."""

from __future__ import annotations

import ast
from pathlib import Path

import hinqs

ROOT = Path(hinqs.__file__).parent
DOMAINS = ("chem", "subspace", "sqd", "nqs")
BELOW = {"io", "errors", "seeding", "deadline", "kernel", "threads", ""}  # "" is ``from hinqs import __version__``


def _hinqs_imports(path: Path) -> set[str]:
    """First component after ``hinqs.`` of every hinqs module the file imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == "hinqs" or name.startswith("hinqs."):
                out.add(name.split(".")[1] if "." in name else "")
    return out


def test_domains_import_only_themselves_and_io():
    wrong = []
    for domain in DOMAINS:
        for path in sorted((ROOT / domain).rglob("*.py")):
            for top in _hinqs_imports(path) - BELOW - {domain}:
                wrong.append(f"{path.relative_to(ROOT)} imports hinqs.{top}")
    assert not wrong, "\n".join(wrong)


def test_io_imports_only_errors():
    wrong = [
        f"{path.relative_to(ROOT)} imports hinqs.{top}"
        for path in sorted((ROOT / "io").rglob("*.py"))
        for top in _hinqs_imports(path) - {"io", "errors"}
    ]
    assert not wrong, "\n".join(wrong)


def test_base_modules_import_no_package():
    """threads, deadline, seeding and errors sit below every package (the kernel included)."""
    wrong = [
        f"{name}.py imports hinqs.{top}"
        for name in ("threads", "deadline", "seeding", "errors")
        for top in _hinqs_imports(ROOT / f"{name}.py") - {"errors", ""}
    ]
    assert not wrong, "\n".join(wrong)


def test_thread_counts_are_set_in_one_module():
    """Only hinqs.threads sets a pool's size (numba, torch, threadpoolctl)."""
    setters = ("set_num_threads(", "threadpool_limits(")
    wrong = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sorted(ROOT.rglob("*.py"))
        if path.name != "threads.py" or path.parent != ROOT
        for line in path.read_text().splitlines()
        if any(setter in line for setter in setters) and not line.lstrip().startswith("#")
    ]
    assert not wrong, "\n".join(wrong)
