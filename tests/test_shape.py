"""The code's shape, checked: layers import downwards only, no import circle, dialect differences only in
the dialect modules (and in tables keyed by dialect), and the library never talks to the terminal."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dpro_migrate"
DIALECT_NAMES = {"SQLITE", "POSTGRES", "sqlite", "postgresql"}


LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"  # installed with .[test], beside this Python


def test_layers_import_downwards_only():
    exe = str(LINT_IMPORTS) if LINT_IMPORTS.exists() else shutil.which("lint-imports")
    assert exe, "import-linter is installed with .[test]"
    done = subprocess.run([exe, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stdout[-3000:]


def _names_a_dialect(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in {"SQLITE", "POSTGRES"}
    if isinstance(node, ast.Constant):
        return node.value in DIALECT_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_dialect(e) for e in node.elts)
    return False


def _compares_a_dialect(node: ast.AST) -> bool:
    """`x == SQLITE`, `dialect != "postgresql"`, `d in (SQLITE, POSTGRES)`: a branch on which database it is."""
    return isinstance(node, ast.Compare) and any(_names_a_dialect(side) for side in [node.left, *node.comparators])


def test_no_dialect_branch_outside_the_dialect_modules():
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        # handoff/standalone is copied into the application's Alembic environment, which runs without
        # dpro_migrate (so without dialects/): it is a program of its own, branching on SQLAlchemy's dialect
        if "dialects" in parts or parts[:2] == ("handoff", "standalone"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if _compares_a_dialect(node):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, found


def test_the_library_never_prints_or_exits():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "render.py", "__main__.py"):
            continue
        text = path.read_text()
        for pattern in (r"^\s*print\(", r"\bsys\.exit\(", r"^\s*(import|from) (typer|rich)\b"):
            found += [f"{path.relative_to(PACKAGE)}: {m.group(0).strip()}" for m in re.finditer(pattern, text, re.M)]
    assert not found, found
