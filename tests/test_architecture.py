"""The packages' imports only go down: no cycles, no module importing a layer above its own.

Every ``import`` and ``from ... import`` in ``server/`` and ``converters/`` counts, including those inside
functions and under ``TYPE_CHECKING`` (a type-only import that runs upward is still a dependency that runs
upward). The layers, lowest first, are the path of one request read backwards; ``docs/architecture.md``
draws them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"modelport.server": ROOT / "server", "modelport.converters": ROOT / "converters"}

# Lowest first. A module may import its own layer and the layers below it. A name ending in "." is a
# subpackage (every module in it); anything else is one module.
LAYERS: dict[str, list[list[str]]] = {
    "modelport.server": [
        [
            "errors",
            "names",
            "lazy_exports",
            "inference",
            "datatypes",
            "setting_fields",
            "settings",
            "settings_doc",
            "config_limits",
            "config_files",
            "warmup",
            "model_config",
            "executor",
            "response_cache",
            "graph_ops",
            "next_steps",
            "cgroup_limits",
        ],
        ["observability."],
        ["workers."],
        ["batching."],
        ["repository."],
        ["shared_memory."],
        ["dataplane"],
        ["protocols."],
        ["console."],
        ["app"],
        ["serve_cli", "doctor", "cli", "__main__", "__init__", "bench."],
    ],
    "modelport.converters": [
        [
            "errors",
            "dotted_names",
            "graph_walk",
            "tensor_specs",
            "options",
            "exported",
            "quiet",
            "samples",
            "onnx_checks",
            "report",
            "repository_writer",
            "sources",
            "signature_match",
            "op_rewrites",
            "custom_ops",
            "verify",
            "mar_archive",
            "mar_handlers",
        ],
        ["frontends."],
        ["quantize."],
        ["api", "tfserving_repository"],
        ["mar_import", "cli_options"],
        ["cli", "tfserving_cli", "__init__", "mar_cli"],
    ],
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            if "generated" in relative.parts:
                continue
            parts = list(relative.parts)
            if parts[-1] == "__init__" and len(parts) > 1:
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modelport modules that ``name`` (at ``path``) imports."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package and not name.endswith("__init__") else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from .x import y" names module x.y when y is a module, else x.
            targets = [
                f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem for alias in node.names
            ]
        for imported in targets:
            if "generated" in imported.split("."):
                continue  # protoc's modules: leaves left out of the graph, not an import of their package
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _layer(module: str) -> tuple[str, int]:
    for package, layers in LAYERS.items():
        if not module.startswith(package):
            continue
        rest = module[len(package) + 1 :] or "__init__"
        for index, layer in enumerate(layers):
            for entry in layer:
                if rest == entry or (entry.endswith(".") and (rest + ".").startswith(entry)):
                    return package, index
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add it to LAYERS")
    raise AssertionError(f"{module} is outside the checked packages")


MODULES = _modules()
GRAPH = {name: sorted(set(_imports(name, path, set(MODULES)))) for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_only_go_down() -> None:
    upward = []
    for module, targets in GRAPH.items():
        package, level = _layer(module)
        for target in targets:
            target_package, target_level = _layer(target)
            if target_package != package:
                upward.append(f"{module} -> {target} (server and converters never import each other)")
            elif target_level > level:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in GRAPH.get(module, []):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
