"""The package layout of DESIGN.md: mapped subpackages, no generic top-level names, a working console script."""

import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared_in_pyproject():
    # find() cannot see through package-dir, so the list is by hand; a folder missing from it would be
    # absent from a wheel while editable installs hide the mistake.
    roots = {"omniembed": ROOT / "omniembed", "omniembed.index": ROOT / "index", "omniembed.serve": ROOT / "serve"}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    found = {p for p in found if "_proto" not in p}
    assert found <= _declared_packages(), f"undeclared packages: {sorted(found - _declared_packages())}"


def test_index_and_serve_import_under_omniembed_not_top_level(tmp_path):
    code = (
        "import importlib.util, omniembed.index, omniembed.serve;"
        "assert importlib.util.find_spec('index') is None;"
        "assert importlib.util.find_spec('serve') is None;"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_console_script_lists_its_subcommands():
    out = subprocess.run([sys.executable, "-m", "omniembed.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "synth" in out.stdout and "tokenizers" in out.stdout
