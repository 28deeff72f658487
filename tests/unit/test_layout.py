"""The package layout must never shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_source_roots_hold_only_packages() -> None:
    for root in ("operator", "harness"):
        loose = sorted(p.name for p in (ROOT / root).iterdir() if p.is_file() and p.suffix == ".py")
        assert loose == [], f"{root}/ must hold only packages, found {loose}"
        assert not (ROOT / root / "__init__.py").exists()


def test_stdlib_operator_module_is_not_shadowed_from_repo_root() -> None:
    code = "import operator; operator.itemgetter; print(operator.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    module_file = Path(result.stdout.strip()).resolve()
    assert ROOT not in module_file.parents, f"'import operator' resolved to the project: {module_file}"


def test_both_packages_import_from_repo_root() -> None:
    code = "import paddock_operator, paddock_harness, operator; operator.attrgetter"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
