"""The installed llama.cpp is the portable build the Makefile asks for: no AMX tile instructions
(they fault where the CPU advertises AMX but the kernel does not grant it) and no AVX-512 (a
wheel built natively on one machine must not die on another). A native build cached by pip
would fail here, on whatever machine it was built."""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

# AMX: tile configuration, loads, stores and dot products; AVX-512: any zmm register or mask op.
AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tdpb\w+)\b")
AVX512 = re.compile(r"%zmm\d+|\{%k[1-7]\}")


def llama_cpp_libraries() -> list[Path]:
    """Every native library the wheel installed (copies under several names counted once)."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    unique = {
        hashlib.sha256(path.read_bytes()).hexdigest(): path
        for path in sorted(Path(llama_cpp.__file__).parent.glob("lib/*.so*"))
    }
    return list(unique.values())


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x86-64 instruction sets only")
def test_llama_cpp_has_no_amx_or_avx512_instructions() -> None:
    objdump = shutil.which("objdump")
    assert objdump, "needs objdump (Debian: binutils, which the C compiler that built it needs)"
    libraries = llama_cpp_libraries()
    assert any(p.name.startswith("libggml-cpu") for p in libraries)
    for library in libraries:
        code = subprocess.run(
            [objdump, "-d", "--no-show-raw-insn", str(library)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert not AMX.search(code), f"{library.name} holds AMX instructions: a native build"
        assert not AVX512.search(code), f"{library.name} holds AVX-512 instructions: a native build"
        if library.name.startswith("libggml-cpu"):
            assert "vfmadd" in code  # a real disassembly: the x86-64-v3 build uses FMA
