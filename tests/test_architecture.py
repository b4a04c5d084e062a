"""The package's layering: every module imports only modules of the layers above it, so there
are no import cycles and the configuration never imports the trainer (docs/ARCHITECTURE.md)."""

import ast
import pathlib

import factorcl_jax

PACKAGE = pathlib.Path(factorcl_jax.__file__).parent
LAYERS = [
    ["validation", "rundir", "plotting", "preemption", "data"],
    ["reporting"],
    ["bounds", "layers"],
    ["tiled"],
    ["critics"],
    ["models", "encoders", "augment"],
    ["objectives"],
    ["fusion"],
    ["schedules"],
    ["config"],
    ["scoring"],
    ["views"],
    ["state"],
    ["train"],
    ["builder"],
    ["loop"],
    ["parallel", "probe"],
    ["evaluation", "estimate", "checkpoint", "classical"],
    ["mi_benchmark"],
    ["run"],
    ["cli", "__init__"],
    ["__main__"],
]


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    (index,) = [i for i, names in enumerate(LAYERS) if top in names]
    return index


def imported(path: pathlib.Path) -> set[str]:
    """``factorcl_jax`` modules ``path`` imports at run time, at any depth of its code (the
    imports of ``if TYPE_CHECKING:`` blocks, read by type checkers only, do not count)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(statement)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for statement in node.body
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("factorcl_jax")
        ):
            module = node.module.removeprefix("factorcl_jax").lstrip(".")
            if module:
                names.add(module)
            else:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(
                alias.name.removeprefix("factorcl_jax.")
                for alias in node.names
                if alias.name.startswith("factorcl_jax.")
            )
    return names


def test_every_module_is_placed_in_a_layer():
    modules = {path.stem for path in PACKAGE.glob("*.py")} | {"data"}
    placed = {name for names in LAYERS for name in names}
    assert modules == placed


def test_modules_import_only_the_layers_above_them():
    wrong = []
    for path in [*PACKAGE.glob("*.py"), *(PACKAGE / "data").glob("*.py")]:
        module = "data" if path.parent.name == "data" else path.stem
        for dependency in imported(path):
            if path.stem == "__init__" or dependency.split(".")[0] == module:
                continue
            if layer_of(dependency) >= layer_of(module):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {dependency}")
    assert not wrong, wrong


def test_the_config_does_not_import_the_trainer():
    assert imported(PACKAGE / "config.py").isdisjoint(
        {"train", "scoring", "views", "state", "builder", "loop", "run"}
    )
