"""Layers that only look down: every import inside the package (module level or inside a function) goes from a
higher layer to a lower one or within a package, and no private name is imported from another package."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# bottom to top; a package may import only from its own layer or below
LAYERS = [
    {"errors", "heap", "xla_cpu", "cache", "zoo", "assets"},
    {"entropy"},
    {"layers", "plan"},
    {"latent_codecs"},  # entropy-model parts: training forward and coding steps of each
    {"coding"},
    {"compiled"},      # a plan's jitted steps and the loop that runs them
    {"models"},
    {"convert"},       # key maps of the official checkpoints: pure functions over state_dicts
    {"registry"},      # joins models and their key maps
    {"io", "data"},
    {"codec", "export"},  # the codec driver; model files and the conversion of official checkpoints
    {"evaluation"},
    {"training"},
    {"api"},           # the front door
    {"cli", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _package(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(root=ROOT):
    """(importing file, its package, imported module, imported names) for every jaxlic import in jaxlic/."""
    for path in sorted((root / "jaxlic").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.split(".")[0] == "jaxlic":
                names = [a.name for a in node.names]
                if node.module == "jaxlic":  # from jaxlic import assets: the submodule is the target
                    for n in names:
                        yield path, _package(module), f"jaxlic.{n}", []
                else:
                    yield path, _package(module), node.module, names
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "jaxlic":
                        yield path, _package(module), a.name, []


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in (ROOT / "jaxlic").iterdir()
                if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert packages == set(RANK), (sorted(packages - set(RANK)), sorted(set(RANK) - packages))


def upward_imports(root=ROOT) -> list[str]:
    up = []
    for path, src, target, _ in _imports(root):
        dst = _package(target)
        if dst in ("__version__",) or src == dst:
            continue
        if RANK[dst] > RANK[src]:
            up.append(f"{path.relative_to(root)}: {src} (layer {RANK[src]}) imports {target} (layer {RANK[dst]})")
    return up


def private_imports(root=ROOT) -> list[str]:
    return [f"{path.relative_to(root)}: from {target} import {n}" for path, src, target, names in _imports(root)
            for n in names if n.startswith("_") and _package(target) != src]


def test_imports_only_look_down():
    up = upward_imports()
    assert not up, "imports that look up:\n" + "\n".join(up)


def test_no_private_names_across_packages():
    found = private_imports()
    assert not found, "\n".join(found)


def test_the_checks_see_imports_inside_functions(tmp_path):
    """What the old convert -> registry cycle hid in: an upward import inside a function, and a private name."""
    (tmp_path / "jaxlic" / "convert").mkdir(parents=True)
    (tmp_path / "jaxlic" / "convert" / "checkpoint.py").write_text(
        "def f():\n    from jaxlic.registry import REGISTRY\n    from jaxlic.models.stf import _slots\n")
    assert upward_imports(tmp_path) == [f"jaxlic/convert/checkpoint.py: convert (layer {RANK['convert']}) imports "
                                        f"jaxlic.registry (layer {RANK['registry']})"]
    assert private_imports(tmp_path) == ["jaxlic/convert/checkpoint.py: from jaxlic.models.stf import _slots"]
