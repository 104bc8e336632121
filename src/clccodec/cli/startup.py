"""Start-up tricks of the `clc` process: the BLAS kernels that fit the CPU, and CompressAI without its eager imports.

`choose_blas_kernels()` (run first by the CLI's entry point, before anything imports numpy): numpy < 2, which
CompressAI 1.2.8 requires, carries an OpenBLAS 0.3.23 that does not recognise the newest CPUs and then falls back
to its oldest kernels (threadpoolctl reports `Prescott`): on a recent Intel server the torch-free decoder ran 4x
slower. OpenBLAS reads OPENBLAS_CORETYPE when it loads; where the user has not set it, the CLI names the generic
kernel family the CPU can run (SkylakeX with AVX-512, Haswell with AVX2 + FMA), the same kernels OpenBLAS itself
picks on the CPUs it knows (its Zen and Cooper Lake targets are those kernels with other block sizes). Linux
x86 only (/proc/cpuinfo); elsewhere nothing changes.

`import compressai` imports every one of its subpackages (datasets, the model zoo, latent codecs, the registry of
point-cloud transforms and, through it, torch_geometric and torch._dynamo): seconds of start-up on a 2-core CPU,
longer than decoding a Kodak image. clccodec uses three of its pieces: the entropy models, GDN and the rANS coder
(compressai == 1.2.8, pinned). Its entropy models import scipy.stats (about a second more) for one call,
norm.ppf, which only building CDF tables (export) makes.

`load()` (run by the CLI's entry point, before any command: a start-up trick for the `clc` process only, never
imposed on a program that imports clccodec) makes the first `import compressai` of the process do this instead:

* registers the `compressai` package with what its __init__ defines (the entropy-coder selection and
  `__version__`) and imports each subpackage on first use instead of all at once: `compressai.zoo`,
  `from compressai import ans` and `import compressai.models` still work for anyone else in the process;
* lets `import scipy.stats` bind a stand-in that imports the real module the first time anything reads an
  attribute of it (norm.ppf at export; any other user's first use).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import os
import types


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module until something reads one of its attributes, then imports the real one.

    (importlib.util.LazyLoader cannot serve here: an `import` statement reads the lazy module's __spec__, which
    already executes it.)
    """

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__") and attr != "__path__":
            raise AttributeError(attr)  # introspection (inspect.getmodule, hasattr(m, "__wrapped__")): not a use
        real = self.__dict__.get("_real_module")
        if real is None:
            name = self.__name__
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, real)
            self.__dict__["_real_module"] = real
        return getattr(real, attr)


def _defer(name: str) -> None:
    """Make `import name` cheap until the module is used (`name` must not be imported yet)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    parent, _, child = name.rpartition(".")
    stand_in = _ImportedOnFirstUse(name)
    stand_in.__file__ = spec.origin
    sys.modules[name] = stand_in
    if parent:
        setattr(importlib.import_module(parent), child, stand_in)


def _compressai_package() -> types.ModuleType:
    """The compressai package with its __init__'s definitions, subpackages imported on demand."""
    spec = importlib.util.find_spec("compressai")
    pkg = importlib.util.module_from_spec(spec)
    coders = ["ans"]
    if importlib.util.find_spec("range_coder") is not None:
        coders.append("rangecoder")

    def set_entropy_coder(entropy_coder: str) -> None:
        if entropy_coder not in coders:
            raise ValueError(f'Invalid entropy coder "{entropy_coder}", choose from({", ".join(coders)}).')
        pkg._entropy_coder = entropy_coder

    def get_entropy_coder() -> str:
        return pkg._entropy_coder

    def available_entropy_coders() -> list[str]:
        return coders

    def __getattr__(name: str):  # PEP 562: `compressai.zoo` imports the subpackage when first touched
        if name == "__version__":
            return importlib.import_module("compressai.version").__version__
        if not name.startswith("__") and importlib.util.find_spec(f"compressai.{name}") is not None:
            return importlib.import_module(f"compressai.{name}")
        raise AttributeError(f"module 'compressai' has no attribute {name!r}")

    pkg.__dict__.update(_entropy_coder="ans", _available_entropy_coders=coders, set_entropy_coder=set_entropy_coder,
                        get_entropy_coder=get_entropy_coder, available_entropy_coders=available_entropy_coders,
                        __getattr__=__getattr__)
    return pkg


class _CompressaiFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `compressai` the first time something imports it, and gives the package above instead of running
    its __init__ (a command that never codes, `clc --help`, never imports it at all)."""

    def find_spec(self, name, path=None, target=None):  # noqa: D102
        if name != "compressai":
            return None
        sys.meta_path.remove(self)  # once
        real = importlib.util.find_spec("compressai")
        if real is None:
            return None
        spec = importlib.machinery.ModuleSpec("compressai", self, origin=real.origin, is_package=True)
        spec.submodule_search_locations = real.submodule_search_locations
        return spec

    def create_module(self, spec):  # noqa: D102
        return _compressai_package()

    def exec_module(self, module) -> None:  # noqa: D102
        if "scipy.stats" not in sys.modules:
            _defer("scipy.stats")  # (the scipy package itself imports in milliseconds)


def load() -> None:
    if "compressai" not in sys.modules and not any(isinstance(f, _CompressaiFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CompressaiFinder())


# the AVX-512 subsets OpenBLAS's SkylakeX kernels use
_SKYLAKEX_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def blas_coretype(flags: set[str] | frozenset[str]) -> str | None:
    """The OpenBLAS kernel family for a CPU with these /proc/cpuinfo flags (None: leave OpenBLAS to choose)."""
    if _SKYLAKEX_FLAGS <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags (empty where there is no /proc/cpuinfo)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def choose_blas_kernels(environ: dict | None = None, flags: frozenset[str] | None = None) -> str | None:
    """Set OPENBLAS_CORETYPE for this process where the user has not (see the module's docstring); the value set,
    or None. Must run before numpy is imported: OpenBLAS reads it once, when it loads. (`environ`, `flags`: a
    dict and CPU flags to use instead of the process's own, for tests.)"""
    own = environ is None
    environ = os.environ if own else environ
    if "OPENBLAS_CORETYPE" in environ or (own and "numpy" in sys.modules):
        return None
    kind = blas_coretype(cpu_flags() if flags is None else flags)
    if kind is not None:
        environ["OPENBLAS_CORETYPE"] = kind
    return kind


def blas_kernels() -> str:
    """The BLAS libraries loaded in this process and the kernels they run, as threadpoolctl reports them
    (e.g. "openblas 0.3.23.dev SkylakeX x2"): printed beside benchmark timings."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    libs = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture') or '?'} x{i.get('num_threads')} "
            f"({os.path.basename(i.get('filepath', ''))})" for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(libs) or "none loaded"
