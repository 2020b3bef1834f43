"""The C bucket function the probes run agrees with the Python reader, value for value.

``C_BUCKET_FUNCTION`` is compiled with gcc as plain C (bcc's ``u32``/``u64``/
``__always_inline`` defined by hand) into a filter that reads values from stdin and
prints their slots; every slot must equal :func:`perfcheck.model.histogram.bucket_index`.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from perfcheck.model.bpf_layout import C_BUCKET_FUNCTION
from perfcheck.model.histogram import bucket_index

GCC = shutil.which("gcc")

pytestmark = pytest.mark.skipif(
    GCC is None, reason="gcc is not on PATH; it is needed to compile C_BUCKET_FUNCTION"
)

U64_MAX = 2**64 - 1

PROGRAM = f"""\
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define u32 uint32_t
#define u64 uint64_t
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

{C_BUCKET_FUNCTION}

int main(void)
{{
    u64 v;

    while (scanf("%" SCNu64, &v) == 1)
        printf("%" PRIu32 "\\n", perfcheck_bucket(v));
    return 0;
}}
"""

STRICT_FLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion")


def compile_filter(directory: Path, extra_flags: Sequence[str] = ()) -> Path:
    assert GCC is not None
    source = directory / "bucket.c"
    binary = directory / "bucket"
    source.write_text(PROGRAM)
    cmd = [GCC, *STRICT_FLAGS, "-Werror", *extra_flags, str(source), "-o", str(binary)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"gcc failed:\n{done.stderr}"
    return binary


def run_filter(binary: Path, values: Sequence[int]) -> list[int]:
    done = subprocess.run(
        [str(binary)],
        input="".join(f"{v}\n" for v in values),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{binary.name} exited {done.returncode}:\n{done.stderr}"
    return [int(line) for line in done.stdout.split()]


def sample_values() -> list[int]:
    rng = random.Random(20240611)
    values = set(range(4097))
    for bit in range(65):
        for v in (2**bit - 1, 2**bit, 2**bit + 1):
            if 0 <= v <= U64_MAX:
                values.add(v)
    values.update(rng.getrandbits(64) for _ in range(2000))
    # Uniform u64s almost all have bit 63 set; also cover every magnitude.
    values.update(rng.getrandbits(rng.randint(1, 64)) for _ in range(3000))
    return sorted(values)


VALUES = sample_values()


def test_value_set_covers_the_interesting_ranges() -> None:
    assert set(range(4097)) <= set(VALUES)
    assert {63, 64, 65, 2**36 - 1, 2**36, 2**36 + 1, U64_MAX} <= set(VALUES)
    assert len(VALUES) > 4097 + 3000


def test_c_bucket_matches_python_bucket_index(tmp_path: Path) -> None:
    binary = compile_filter(tmp_path)
    got = run_filter(binary, VALUES)
    assert len(got) == len(VALUES)
    mismatches = [
        (v, c, bucket_index(v)) for v, c in zip(VALUES, got, strict=True) if c != bucket_index(v)
    ]
    assert not mismatches, f"(value, C slot, Python slot), first 20: {mismatches[:20]}"


def test_c_bucket_has_no_undefined_behaviour(tmp_path: Path) -> None:
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    assert GCC is not None
    sanitizer = ["-fsanitize=undefined", "-fno-sanitize-recover=all"]
    linked = subprocess.run(
        [GCC, *sanitizer, str(probe), "-o", str(tmp_path / "probe")],
        capture_output=True,
        check=False,
    )
    if linked.returncode != 0:
        pytest.skip("gcc cannot link -fsanitize=undefined here (libubsan is not installed)")
    binary = compile_filter(tmp_path, sanitizer)
    assert run_filter(binary, VALUES) == [bucket_index(v) for v in VALUES]


def c_code_only() -> str:
    without_block_comments = re.sub(r"/\*.*?\*/", " ", C_BUCKET_FUNCTION, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", " ", without_block_comments)


def test_c_bucket_uses_nothing_the_bpf_verifier_or_bcc_would_reject() -> None:
    code = c_code_only()
    assert "static __always_inline u32 perfcheck_bucket(u64 v)" in code
    for keyword in ("for", "while", "do", "goto", "float", "double"):
        assert not re.search(rf"\b{keyword}\b", code), f"C bucket function uses {keyword!r}"
    for operator in ("/", "%"):
        assert operator not in code, f"C bucket function divides ({operator!r})"
    for type_name in ("int", "long", "short", "char", "unsigned", "signed", "size_t"):
        assert not re.search(rf"\b{type_name}\b", code), f"C bucket function uses {type_name!r}"
    assert "__builtin" not in code
