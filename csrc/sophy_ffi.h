/* sophy C helpers: one engine operation per FFI crossing, with every engine sharp edge
 * (misuse aborts, document ownership, size-0-means-strlen, closed/forked environments) kept on
 * this side of the boundary.  Everything declared here is also declared in build_ffi.py's cdef. */
#ifndef SOPHY_FFI_H
#define SOPHY_FFI_H

#include <stdint.h>
#include <pthread.h>

/* bumped whenever the helpers' interface changes; the Python layer refuses another value */
#define SY_ABI      3

#define SY_MAX_KEYS 5      /* key parts; with one value field stays within the engine's 6 */
#define SY_NAME_MAX 32

/* Result codes (all negative; >= 0 means success / a size). */
#define SY_ERROR    -1     /* engine error: read sy_env_error() */
#define SY_CLOSED   -2     /* environment or handle closed */
#define SY_BUSY     -3     /* handle in use by another thread */
#define SY_FORKED   -4     /* environment belongs to the parent process */
#define SY_BADKEY   -5     /* malformed packed key */
#define SY_NOTFOUND -6
#define SY_LOCKED   -7     /* single-statement write hit a key locked by an open transaction */
#define SY_BADARG   -8     /* handles of different environments, bad order, ... */
#define SY_TOOBIG   -9     /* the next row does not fit the caller's buffer */
#define SY_NOMEM    -10

/* field types (values of sy_db.ktype) */
#define SY_T_STRING 0
#define SY_T_U8     1
#define SY_T_U16    2
#define SY_T_U32    3
#define SY_T_U64    4

typedef struct sy_env {
	void *env;
	pthread_rwlock_t lock;  /* readers: every operation; writer: open/close */
	int state;              /* 0 offline, 1 online, 2 closed */
	unsigned fork_gen;      /* fork generation at creation */
} sy_env;

typedef struct sy_db {
	sy_env *env;
	void *db;
	int nkey;
	int raw;                /* single string key: packed key == the raw bytes */
	int ktype[SY_MAX_KEYS];
	int krev[SY_MAX_KEYS];
	char kname[SY_MAX_KEYS][SY_NAME_MAX];
	char vname[SY_NAME_MAX];
} sy_db;

typedef struct sy_txn {
	sy_env *env;
	void *tx;
	int busy;
} sy_txn;

typedef struct sy_cursor {
	sy_env *env;
	sy_db *db;
	sy_txn *view;           /* non-NULL: scan by repeated seeks in this transaction */
	void *cur;              /* engine cursor (cursor mode) */
	void *doc;              /* current result document */
	int emitted;            /* doc already copied out */
	int started, done, busy, order;
	char *start; int startlen;
	char *stop; int stoplen; int stop_incl;
	char *prefix; int plen;
	char *last; int lastlen; int lastcap;
	char *seed;             /* descending prefix seek key (the engine keeps the pointer) */
} sy_cursor;

/* environment */
int sy_env_new(sy_env *e);
int sy_env_setstring(sy_env *e, const char *key, const char *val, int len);
int sy_env_setint(sy_env *e, const char *key, int64_t val);
int sy_env_getint(sy_env *e, const char *key, int64_t *out);
int sy_env_getstring(sy_env *e, const char *key, char *buf, int cap);
int sy_env_open(sy_env *e);
int sy_env_close(sy_env *e);
int sy_env_error(sy_env *e, char *buf, int cap);
int sy_env_status(sy_env *e);

/* databases */
int sy_db_bind(sy_db *d, sy_env *e, const char *name, int nkey, const int *ktypes,
               const int *krev);
int sy_db_scheme(sy_db *d, char *buf, int cap);
int sy_keycmp(sy_db *d, const char *a, int alen, const char *b, int blen);

/* single operations; txn may be NULL */
int sy_set(sy_db *d, sy_txn *t, const char *key, int klen, const char *val, int vlen);
int sy_delete(sy_db *d, sy_txn *t, const char *key, int klen);
int64_t sy_get(sy_db *d, sy_txn *t, const char *key, int klen, char *buf, int64_t cap);

/* batches: n packed keys/values laid end to end, lengths in klens/vlens */
int sy_get_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                char *buf, int64_t cap, int32_t *vlens);
int sy_set_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                const char *vals, const int32_t *vlens);

/* transactions */
int sy_begin(sy_env *e, sy_txn *t);
int sy_commit(sy_txn *t);
int sy_rollback(sy_txn *t);

/* cursors */
int sy_cursor_open(sy_cursor *c, sy_db *d, sy_txn *view, int order,
                   const char *start, int startlen, const char *prefix, int plen,
                   const char *stop, int stoplen, int stop_incl);
/* sizes must hold 2 * maxrows entries unless want == 0 (count only) */
int sy_cursor_fetch(sy_cursor *c, char *buf, int64_t cap, int32_t *sizes, int maxrows,
                    int want);
int sy_cursor_close(sy_cursor *c);

uint32_t sy_crc32c(uint32_t crc, const char *buf, int len);

#endif
