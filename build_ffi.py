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

#define SY_MAX_KEYS ...
#define SY_ERROR ...
#define SY_CLOSED ...
#define SY_BUSY ...
#define SY_FORKED ...
#define SY_BADKEY ...
#define SY_NOTFOUND ...
#define SY_LOCKED ...
#define SY_BADARG ...
#define SY_TOOBIG ...
#define SY_NOMEM ...
#define SY_T_STRING ...
#define SY_T_U8 ...
#define SY_T_U16 ...
#define SY_T_U32 ...
#define SY_T_U64 ...

typedef struct sy_env { ...; } sy_env;
typedef struct sy_db { ...; } sy_db;
typedef struct sy_txn { ...; } sy_txn;
typedef struct sy_cursor { ...; } sy_cursor;

int sy_env_new(sy_env *e);
int sy_env_setstring(sy_env *e, const char *key, const char *val, int len);
int sy_env_setint(sy_env *e, const char *key, int64_t val);
int sy_env_getint(sy_env *e, const char *key, int64_t *out);
int sy_env_getstring(sy_env *e, const char *key, char *buf, int cap);
int sy_env_open(sy_env *e);
int sy_env_close(sy_env *e);
int sy_env_error(sy_env *e, char *buf, int cap);
int sy_env_status(sy_env *e);

int sy_db_bind(sy_db *d, sy_env *e, const char *name, int nkey, const int *ktypes,
               const int *krev);
int sy_db_scheme(sy_db *d, char *buf, int cap);
int sy_keycmp(sy_db *d, const char *a, int alen, const char *b, int blen);

int sy_set(sy_db *d, sy_txn *t, const char *key, int klen, const char *val, int vlen);
int sy_delete(sy_db *d, sy_txn *t, const char *key, int klen);
int64_t sy_get(sy_db *d, sy_txn *t, const char *key, int klen, char *buf, int64_t cap);
int sy_get_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                char *buf, int64_t cap, int32_t *vlens);
int sy_set_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                const char *vals, const int32_t *vlens);

int sy_begin(sy_env *e, sy_txn *t);
int sy_commit(sy_txn *t);
int sy_rollback(sy_txn *t);

int sy_cursor_open(sy_cursor *c, sy_db *d, sy_txn *view, int order,
                   const char *start, int startlen, const char *prefix, int plen,
                   const char *stop, int stoplen, int stop_incl);
int sy_cursor_fetch(sy_cursor *c, char *buf, int64_t cap, int32_t *sizes, int maxrows,
                    int want);
int sy_cursor_close(sy_cursor *c);

uint32_t sy_crc32c(uint32_t crc, const char *buf, int len);
"""

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
