"""The CLI's start-up choice of BLAS kernels (cli/startup.py): OpenBLAS in numpy < 2 falls back to its oldest
kernels on CPUs it does not know; the `clc` process names the family the CPU runs unless the user has."""

import os
import subprocess
import sys

from clccodec.cli.startup import blas_coretype, choose_blas_kernels, cpu_flags

AVX512 = frozenset({"fma", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_fp16"})


def test_kernel_family_from_cpu_flags():
    assert blas_coretype(AVX512) == "SkylakeX"
    assert blas_coretype(frozenset({"sse4_2", "avx", "avx2", "fma"})) == "Haswell"
    assert blas_coretype(AVX512 - {"avx512vl"} - {"fma"}) is None  # no complete subset: OpenBLAS decides
    assert blas_coretype(frozenset({"sse2", "neon"})) is None
    assert blas_coretype(frozenset()) is None


def test_user_setting_wins_and_missing_cpuinfo_changes_nothing(tmp_path):
    env = {"OPENBLAS_CORETYPE": "Prescott"}
    assert choose_blas_kernels(env, AVX512) is None and env == {"OPENBLAS_CORETYPE": "Prescott"}
    env = {}
    assert choose_blas_kernels(env, AVX512) == "SkylakeX" and env == {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "fma"}


def test_numpy_loads_the_chosen_kernels():
    """In a fresh process, as the CLI's entry point does: the kernels numpy's OpenBLAS reports are the ones named."""
    code = ("from clccodec.cli.startup import choose_blas_kernels\n"
            "kind = choose_blas_kernels()\n"
            "import numpy\n"
            "from threadpoolctl import threadpool_info\n"
            "arch = [i['architecture'] for i in threadpool_info() if 'numpy' in i['filepath']]\n"
            "print(kind, arch)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    kind, _, arch = out.strip().partition(" ")
    if kind != "None":
        assert f"'{kind}'" in arch, out
