"""cffi builder (out-of-line API mode) for ``sophy._sophia_ffi``.

The engine amalgamation is located and verified by ``csrc/engine_source.py`` (loaded by path: this
script is exec'd by cffi and must not import the package), copied to ``build/engine/`` with the
patch series applied, then compiled in one translation unit with our helpers (csrc/sophy_ffi.c).

Build variants, chosen with ``SOPHY_BUILD`` (comma-separated):
  ``injection``  compile the engine's fault-injection points (-DSS_INJECTION_ENABLE);
  ``asan``       address + undefined-behaviour sanitizers (run with the ASan runtime preloaded).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"


def _load_engine_source():
    spec = importlib.util.spec_from_file_location("_sophy_engine_source", CSRC / "engine_source.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


engine_source = _load_engine_source()
engine_source.ensure_engine()
ENGINE_BUILD = engine_source.prepare_build_copy(ROOT / "build" / "engine")

VARIANTS = {v.strip() for v in os.environ.get("SOPHY_BUILD", "").split(",") if v.strip()}
unknown = VARIANTS - {"injection", "asan"}
if unknown:
    raise SystemExit("SOPHY_BUILD: unknown variant(s) %s; expected injection and/or asan"
                     % ", ".join(sorted(unknown)))

CDEF = """
/* the engine's public API (declared for completeness; Python code uses the helpers only,
   since misuse of these aborts the process) */
void    *sp_env(void);
void    *sp_document(void*);
int      sp_setstring(void*, const char*, const void*, int);
int      sp_setint(void*, const char*, int64_t);
void    *sp_getobject(void*, const char*);
void    *sp_getstring(void*, const char*, int*);
int64_t  sp_getint(void*, const char*);
int      sp_open(void*);
int      sp_destroy(void*);
int      sp_set(void*, void*);
int      sp_upsert(void*, void*);
int      sp_delete(void*, void*);
void    *sp_get(void*, void*);
void    *sp_cursor(void*);
void    *sp_begin(void*);
int      sp_prepare(void*);
int      sp_commit(void*);

"""


def helper_declarations(header: Path) -> str:
    """The cdef of our helpers, read from csrc/sophy_ffi.h so the two cannot drift apart:
    integer constants become ``#define NAME ...`` (the compiler fills them), structs stay opaque
    (``...;``), prototypes are copied as written."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    out = ["#define %s ..." % m for m in re.findall(r"^#define (SY_\w+)\s+-?\d+", text, re.M)]
    out += ["typedef struct %s { ...; } %s;" % (m, m)
            for m in re.findall(r"^typedef struct (sy_\w+) \{", text, re.M)]
    out += re.findall(r"^(?:int|int64_t|uint32_t) sy_\w+\([^;]*\);", text, re.M)
    return "\n".join(out)


CDEF += helper_declarations(CSRC / "sophy_ffi.h")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)

cflags = ["-std=gnu99", "-O2", "-pthread", "-Wall", "-Wextra",
          # the engine is found through -isystem so its ~100 warnings stay silent while
          # everything in csrc/ is checked
          "-isystem", str(ENGINE_BUILD)]
ldflags = ["-pthread"]
macros = [("NDEBUG", "1")]
if "injection" in VARIANTS:
    macros.append(("SS_INJECTION_ENABLE", "1"))
if "asan" in VARIANTS:
    cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
    ldflags += ["-fsanitize=address,undefined"]

ffibuilder.set_source(
    "sophy._sophia_ffi",
    '#include <sophia.h>\n#include "sophy_ffi.h"\n',
    # setuptools wants sources relative to setup.py
    sources=[os.path.relpath(CSRC / "sophy_ffi.c", ROOT)],
    include_dirs=[str(CSRC)],
    define_macros=macros,
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), verbose=True)
