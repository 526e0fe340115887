"""The tree tells the data path: one subpackage per stage, no loose modules, nothing shipped for tests alone."""

import ast
import pathlib

from omniembed.cli import SUBCOMMANDS

ROOT = pathlib.Path(__file__).resolve().parents[1]
# folder -> import name (index/ and serve/ install as omniembed.index and omniembed.serve)
SHIPPED = {ROOT / "omniembed": "omniembed", ROOT / "index": "omniembed.index", ROOT / "serve": "omniembed.serve"}
GLUE = {"__init__", "__main__", "cli", "errors", "logs", "hits"}  # what may sit at the top of omniembed/


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for folder, name in SHIPPED.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            if "_proto" in rel.parts:
                continue
            parts = [name, *rel.parts]
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported_names(path: pathlib.Path, module: str) -> set[str]:
    """Every module name this file imports, at the top or inside functions, absolute or relative."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return names


def test_no_loose_modules_at_the_top_of_the_package():
    loose = sorted(p.stem for p in (ROOT / "omniembed").glob("*.py") if p.stem not in GLUE)
    assert loose == [], f"modules outside a stage's subpackage: {loose}"


def test_every_shipped_module_is_used_by_the_package_or_is_a_command():
    modules = _modules()
    used = set()
    for name, path in modules.items():
        used |= {n for n in _imported_names(path, name) if n != name}
    commands = {m for m, _ in SUBCOMMANDS.values()} | {"omniembed.cli"}  # the subcommands and the console script
    orphans = sorted(name for name, path in modules.items()
                     if name not in used and name not in commands and path.name not in ("__init__.py", "__main__.py"))
    assert orphans == [], f"shipped modules no shipped code imports (imported only by tests?): {orphans}"


def test_test_and_benchmark_fixtures_are_not_shipped():
    modules = _modules()
    assert not [n for n in modules if any(w in n for w in ("fresh", "synthetic", "fixture", "conftest"))]
