"""The package's layers (README "Layout"): each module imports only modules of its own layer or above it.

Imports are read from the source (``ast``), module level and inside functions alike, so a lazy import
that reaches down a layer fails here too. Every module must have a row in ``LAYER``: a new module is
placed on purpose, not by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stvg_lab"

# module (or package prefix) -> layer; README "Layout" lists the same
LAYER: dict[str, int] = {
    "stvg_lab.geometry": 1,
    "stvg_lab.answer": 2,
    "stvg_lab.reward_inputs": 3,
    "stvg_lab.rewards": 3,
    "stvg_lab.reward_variants": 3,
    "stvg_lab.metrics": 3,
    "stvg_lab.data": 4,
    "stvg_lab.video": 4,
    "stvg_lab.baselines": 4,
    "stvg_lab.processor": 5,
    "stvg_lab.model_parts": 5,
    "stvg_lab.model": 5,
    "stvg_lab.task": 5,
    "stvg_lab.infer": 5,
    "stvg_lab.evaluate": 5,
    "stvg_lab.train": 6,
    "stvg_lab.analysis": 7,
    "stvg_lab.viz": 7,
    "stvg_lab.pipeline": 8,
    "stvg_lab.notebook": 8,
    "stvg_lab.cli": 8,
}
# beside the layers: used by any of them, importing nothing of the package
STANDALONE = {"stvg_lab.checkpoints", "stvg_lab.folders", "stvg_lab"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The layer of ``module``: its own row, else its package's (``stvg_lab.data.synth`` -> ``stvg_lab.data``)."""
    while module:
        if module in LAYER:
            return LAYER[module]
        module = module.rpartition(".")[0]
    return None


def _imports(path: Path) -> set[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "stvg_lab" or name.startswith("stvg_lab.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    ("module", "want"),
    [
        ("stvg_lab.rewards", 3),  # a row of its own
        ("stvg_lab.data.synth", 4),  # a package's row covers its modules
        ("stvg_lab.train.grpo_video", 6),
        ("stvg_lab.models", None),  # only starts like stvg_lab.model: a row covers dotted children, not prefixes
        ("stvg_lab.unknown", None),
    ],
)
def test_layer_lookup(module, want):
    assert _layer(module) == want


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_module_imports_only_its_layer_or_above(path):
    module = _module_name(path)
    imports = _imports(path) - {module}
    if module in STANDALONE:
        # the package's own __init__ may name nothing of its modules either (import stays cheap)
        assert not imports, f"{module} stands beside the layers and must import nothing of stvg_lab; imports {sorted(imports)}"
        return
    own = _layer(module)
    assert own is not None, f"{module} has no layer: add it to LAYER here and to README 'Layout'"
    down = {}
    for name in imports:
        if name in STANDALONE:
            continue
        layer = _layer(name)
        if layer is None or layer > own:
            down[name] = layer
    assert not down, f"{module} (layer {own}) imports from a lower layer: {down}"
