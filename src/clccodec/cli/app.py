"""The Typer app and what every command shares: consoles, common options, one-line errors, the codec.

Nothing here imports torch: `clc --help`, `clc --version`, `clc info` start in a fraction of a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .. import __version__
from ..errors import EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, ClcError

err = Console(stderr=True, highlight=False, soft_wrap=True)  # one-line errors stay one line
out = Console(highlight=False, soft_wrap=True)  # JSON lines must not be wrapped

# click keeps a paragraph that starts with \b as written: one example, one exit code per line
EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


def examples(*lines: str) -> str:
    """A command's examples for its --help, one per line."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _plain_value_names() -> None:
    """Option values named as cwebp or avifenc name them (FLOAT, INT, TEXT, PATH), where typer prints its type
    names (<float range>, <str>); an argument's metavar already says what it is; a choice keeps its
    [a|b]. The CLI's own process only (typer 0.28: pyproject.toml says why not 0.29)."""
    option = getattr(getattr(typer, "core", None), "TyperOption", None)
    if option is None or not hasattr(option, "make_metavar"):
        return
    names = {"float": "FLOAT", "float range": "FLOAT", "int": "INT", "int range": "INT", "str": "TEXT",
             "path": "PATH", "file": "PATH", "boolean": ""}
    plain = option.make_metavar

    def make_metavar(self, ctx) -> str:
        if self.metavar is None and self.type.get_metavar(param=self, ctx=ctx) is None:
            name = names.get(self.type.name)
            if name is not None:
                return name + ("..." if self.nargs != 1 else "")
        return plain(self, ctx)

    option.make_metavar = make_metavar


_plain_value_names()


app = typer.Typer(
    name="clc",
    help="clc: a learned image codec (Conditional Latent Coding) with dictionary references.\n\n"
    "\b\nExamples:\n"
    "  clc encode photo.png -o photo.clc --quality 3\n"
    "  clc decode photo.clc -o out.png\n"
    "  clc encode photo.png --effort 9 --target-bpp 0.5   (slower encode, smaller file, rate control)\n"
    "  clc info photo.clc\n"
    "  clc build-dict ./photos -o my.clcdict\n"
    "  clc encode *.png -o compressed/        (batch, with a progress bar)\n"
    "  cat photo.png | clc encode - -o - > photo.clc",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Weights file (default: the shipped model, "
                                                  "or $CLC_MODEL).", show_default=False)]
DictOpt = Annotated[Optional[str], typer.Option("--dict", help="Reference dictionary .clcdict (default: the "
                                                "shipped one, or $CLC_DICTIONARY; 'none' disables).",
                                                show_default=False)]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto, cpu or cuda (auto: a GPU where there is one). On a CPU, encodes at efforts 0-2 and "
                     "decodes with the default synthesis run without torch.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="Print errors only.")]
# the batch engine (cli/distributed.py): the same jobs on a Ray cluster
EngineOpt = Annotated[str, typer.Option("--engine", help="'local' (this process) or 'ray' (a pool of Ray workers, "
                                        "pip install 'clccodec[ray]': inputs may be folders or URIs such as "
                                        "s3://bucket/photos/, -o is a folder or URI, a manifest row per input, "
                                        "complete outputs are skipped on a rerun).")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="With --engine ray: the cluster ('auto', "
                                                   "ray://HOST:10001). Default: $RAY_ADDRESS, else a local Ray "
                                                   "runtime on this machine's cores.", show_default=False)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="With --engine ray: Ray workers, each with its "
                                                   "own model (default: the cluster's CPUs / --worker-cpus).",
                                                   min=1, show_default=False)]
WorkerCpusOpt = Annotated[float, typer.Option("--worker-cpus", help="With --engine ray: CPUs (threads) per worker.",
                                              min=0.01)]
ManifestOpt = Annotated[Optional[str], typer.Option("--manifest", metavar="PATH", help="With --engine ray: where the "
                                                    "rows go, JSON lines or .parquet (default: "
                                                    "OUTPUT/manifest.jsonl).", show_default=False)]
ExactOpt = Annotated[bool, typer.Option("--exact", help="Bit-exact synthesis: identical pixels on every device "
                                        "and thread count (several times slower). Default: the fast float32 "
                                        "synthesis, within a pixel's last bit or two of it.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"clc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    pass


def fail(msg: str, code: int = 1) -> None:
    """One line on stderr, no traceback."""
    err.print(f"clc: error: {msg}", markup=False, soft_wrap=True)  # one line, never wrapped at 80 columns
    raise typer.Exit(code)


def guard(fn: Callable[[], None]) -> None:
    """Turn library errors into one line + exit code; never show a traceback unless CLC_DEBUG is set."""
    try:
        fn()
    except typer.Exit:
        raise
    except ClcError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        err.print("clc: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as e:  # noqa: BLE001 - last line of defence: a bug must still not print a traceback
        if os.environ.get("CLC_DEBUG"):
            raise
        fail(f"internal error: {e.__class__.__name__}: {e} (set CLC_DEBUG=1 for a traceback)", EXIT_INTERNAL)


def dictionary_arg(value: Optional[str]):
    """--dict: None (the default dictionary), False ('none') or a path."""
    if value is None:
        return None
    if value.lower() == "none":
        return False
    return Path(value)


def make_codec(model: Optional[Path], dictionary: Optional[str], device: str):
    from ..api import Codec

    return Codec(model, dictionary_arg(dictionary), device)


def make_encoder(model: Optional[Path], dictionary: Optional[str], device: str, torch_calls: bool = False):
    """The encoder (encoding.backends.Encoder: the numpy encoder on a CPU where it can, torch for the rest;
    `torch_calls`: the options need torch)."""
    from ..encoding.backends import Encoder

    retain_freed_memory()
    return Encoder(model, dictionary_arg(dictionary), device, torch_calls=torch_calls)


def make_decoder(model: Optional[Path], dictionary: Optional[str], device: str, exact: bool = False):
    """The decoder (decoding.decoder.Decoder: the numpy backend on a CPU, torch where it must)."""
    from ..decoding.decoder import Decoder

    retain_freed_memory()  # a short-lived process: reuse freed blocks instead of faulting in new ones
    return Decoder(model, dictionary_arg(dictionary), device, exact)


def retain_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of handing large blocks back to the OS, so a decode's
    many short-lived arrays do not page-fault afresh each time (first decode in a fresh process ~10 % faster).
    Process-wide: for the CLI's short-lived process, never a library user's. No-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    except (OSError, AttributeError):
        pass


def main() -> None:
    """The `clc` entry point. Its start-up settings are the CLI process's own, never imposed on a program that
    imports clccodec: CompressAI's subpackages and scipy.stats import on first use (startup.py), and the
    deprecation warning CompressAI's import-time torch.jit.script draws from newer torch is not shown."""
    import warnings

    from . import startup

    startup.choose_blas_kernels()
    startup.load()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    app()
