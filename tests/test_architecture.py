"""The package's layering, as docs/ARCHITECTURE.md states it: every module is in the module
map, and imports only modules listed above it (type-checking imports included), so there is
no import cycle and the configuration never imports the trainer."""

import ast
import importlib
import pathlib
import re
import subprocess

import factorcl_jax
from factorcl_jax.config.files import tomllib

PACKAGE = pathlib.Path(factorcl_jax.__file__).parent
MAP = PACKAGE.parent / "docs" / "ARCHITECTURE.md"


def module_map() -> list[str]:
    """The modules of the map's table, in order (rank = position)."""
    text = MAP.read_text()
    table = text[text.index("## Module map") : text.index("\n## ", text.index("## Module map") + 1)]
    return [
        match.group(1)
        for line in table.splitlines()
        if (match := re.match(r"\|[^|]*\| `([\w.]+)` \|", line))
    ]


def modules_on_disk() -> dict[str, pathlib.Path]:
    """``{"training.step": path, "validation": path, "__init__": path, ...}``; a package's
    ``__init__`` is its package name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) == 2 and parts[1] == "__init__":
            found[parts[0]] = path
        else:
            found[".".join(parts)] = path
    return found


def imported(path: pathlib.Path) -> set[str]:
    """``factorcl_jax`` modules ``path`` imports at any depth of its code, as map names:
    ``from factorcl_jax.training import loop`` is ``training.loop``,
    ``from factorcl_jax.bounds.formulas import X`` is ``bounds.formulas``,
    ``from factorcl_jax import bounds`` is the package ``bounds``."""
    tree = ast.parse(path.read_text())
    names = set()
    known = modules_on_disk()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("factorcl_jax"):
                continue
            module = node.module.removeprefix("factorcl_jax").lstrip(".")
            for alias in node.names:
                child = f"{module}.{alias.name}" if module else alias.name
                names.add(child if child in known else module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("factorcl_jax."):
                    names.add(alias.name.removeprefix("factorcl_jax."))
    return {name for name in names if name}


def rank_of(order: list[str], name: str) -> int:
    """A module's rank; a package ranks as its last module (its ``__init__`` imports all)."""
    if name in order:
        return order.index(name)
    members = [i for i, module in enumerate(order) if module.startswith(f"{name}.")]
    assert members, f"{name} is not in the module map"
    return max(members)


def test_every_module_is_in_the_module_map_once():
    order = module_map()
    assert len(order) == len(set(order)), "a module is listed twice"
    on_disk = {
        name
        for name in modules_on_disk()
        if "." in name or name in ("validation", "__init__", "__main__")
    }
    assert set(order) == on_disk


def test_modules_import_only_modules_above_them():
    order = module_map()
    wrong = []
    for name, path in modules_on_disk().items():
        if name == "__init__" or name == "__main__":
            continue
        if "." not in name and name != "validation":  # a sub-package's __init__
            outside = [d for d in imported(path) if not d.startswith(f"{name}.")]
            wrong += [f"{name}/__init__ imports {d} (re-exports only its own)" for d in outside]
            continue
        package = name.split(".")[0]
        for dependency in imported(path):
            if dependency == package:
                wrong.append(f"{name} imports its own package {package} (a cycle)")
            elif rank_of(order, dependency) >= rank_of(order, name):
                wrong.append(f"{name} imports {dependency}, listed below it")
    assert not wrong, wrong


def test_the_configuration_does_not_import_the_training_step():
    for name in ("config.sections", "config.presets", "config.files"):
        path = modules_on_disk()[name]
        assert not {d for d in imported(path) if d.startswith(("training", "runs"))}, name


def test_every_console_script_names_a_function_that_exists():
    """``[project.scripts]`` is read from pyproject.toml, not from the installed metadata, so
    a module moved without updating the entry point fails here."""
    scripts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_every_folder_of_the_package_is_a_package_that_installs_and_is_tracked():
    """Each folder holding modules has an ``__init__.py`` (a wheel built by setuptools'
    ``find_packages`` leaves out folders without one) and, in a git checkout, no file of the
    package is ignored (an ignored module is missing from every clone)."""
    from setuptools import find_packages

    folders = {
        ".".join(("factorcl_jax", *path.parent.relative_to(PACKAGE).parts))
        for path in PACKAGE.rglob("*.py")
    }
    assert folders == set(find_packages(str(PACKAGE.parent), include=["factorcl_jax*"]))
    files = [str(path) for path in PACKAGE.rglob("*.py")]
    listed = subprocess.run(
        ["git", "-C", str(PACKAGE.parent), "check-ignore", "--no-index", *files],
        capture_output=True,
        text=True,
    )
    if listed.returncode == 128:  # not a git checkout (e.g. an unpacked sdist)
        return
    assert listed.stdout == "", f"ignored by git: {listed.stdout}"
