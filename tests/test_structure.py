"""The shape of the code base: no import loops, a CLI of small modules, and one home for shared facts."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

SRC = REPO / "src" / "clccodec"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """clccodec modules a module imports, at module level or inside functions (a lazy import loops too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("clccodec")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("clccodec"):
                continue
            modules = {f"{target}.{a.name}" for a in node.names}
            found |= {m for m in modules if (SRC.parent / (m.replace(".", "/") + ".py")).exists()
                      or (SRC.parent / m.replace(".", "/") / "__init__.py").exists()} or {target}
    # a package importing its own submodules (to register them) is how packages work, not a loop
    return {m for m in found if not (path.name == "__init__.py" and m.startswith(name + "."))} - {name}


def test_no_import_loops():
    graph = {module_name(p): imports(p) for p in SRC.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, "import loop: " + " -> ".join(stack[stack.index(m):] + [m])
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            visit(dep, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def test_cli_is_a_package_of_small_modules():
    assert not (SRC / "cli.py").exists()
    sizes = {p.name: len(p.read_text().splitlines()) for p in (SRC / "cli").glob("*.py")}
    assert len(sizes) >= 5 and max(sizes.values()) <= 250, sizes


def test_renamed_config_key_is_read_under_its_old_name_and_keeps_ids():
    from clccodec.model.config import TINY, ModelConfig

    old = TINY.to_dict()
    old["M"] = old.pop("latent_channels")  # weights format 1 spelling
    assert ModelConfig.from_dict(old) == TINY
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    assert '"M": 24' in TINY.id_json() and "latent_channels" not in TINY.id_json()


FACE = {"__init__", "__main__", "api", "errors", "defaults", "pillow"}  # the package root: its face, nothing else
# what each lower layer may import (the packages above it never appear): the file formats are bytes only; the
# model stands on the formats' ids, file helpers and errors; io on the formats' metadata
LAYERS = {
    "format": {"clccodec.format", "clccodec.errors"},
    "io": {"clccodec.io", "clccodec.format", "clccodec.errors"},
    "model": {"clccodec.model", "clccodec.format", "clccodec.io", "clccodec.errors", "clccodec.defaults"},
}


def test_the_package_root_holds_only_its_face():
    root = {p.stem for p in SRC.glob("*.py")}
    assert root <= FACE, sorted(root - FACE)


def test_lower_layers_import_nothing_above_them():
    bad = []
    for layer, allowed in LAYERS.items():
        for p in (SRC / layer).rglob("*.py"):
            bad += [f"{module_name(p)} -> {m}" for m in sorted(imports(p))
                    if m != "clccodec" and not any(m == a or m.startswith(a + ".") for a in allowed)]
    assert not bad, bad


def test_the_format_and_numpy_decoder_never_import_torch():
    """The formats are bytes; the numpy backend's whole import closure stays free of torch (a decode without it)."""
    code = ("import sys\nimport clccodec.format.container, clccodec.format.clcdict, clccodec.format.copysection\n"
            "import clccodec.decoding.numpy_backend, clccodec.decoding.decoder\n"
            "assert 'torch' not in sys.modules and 'compressai' not in sys.modules, 'torch imported'")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
