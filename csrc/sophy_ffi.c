/* sophy C helpers.  See sophy_ffi.h for the contract.
 *
 * The engine amalgamation is included into this translation unit (found through -isystem, so
 * its own warnings stay silent while ours are checked): the helpers may then read engine
 * internals (error counter, effective scheme) without extra calls, and the compiler can inline
 * the sp_* entry points into them. */
#pragma GCC diagnostic push
/* reported from inlined engine code at -O2 despite -isystem */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <sophia.c>
#pragma GCC diagnostic pop

#include "sophy_ffi.h"

#include <string.h>
#include <stdlib.h>

/* ---- fork generation: a child process must never use its parent's environment ---- */

static volatile unsigned sy_fork_gen = 0;
static pthread_once_t sy_once = PTHREAD_ONCE_INIT;

static void sy_atfork_child(void) { sy_fork_gen++; }
static void sy_init_once(void) { pthread_atfork(NULL, NULL, sy_atfork_child); }

static const char *const sy_orders[4] = { ">=", ">", "<=", "<" };

/* Enter an operation: checks fork and state under the shared lock. On 0 the caller must
 * sy_leave(). */
static int sy_enter(sy_env *e)
{
	if (e == NULL)
		return SY_CLOSED;
	if (e->fork_gen != sy_fork_gen)
		return SY_FORKED;
	pthread_rwlock_rdlock(&e->lock);
	if (e->state != 1) {
		int rc = e->state == 2 ? SY_CLOSED : SY_BADARG;
		pthread_rwlock_unlock(&e->lock);
		return rc;
	}
	return 0;
}

static void sy_leave(sy_env *e) { pthread_rwlock_unlock(&e->lock); }

/* Offline configuration must also hold the lock, but state 0 is the expected one. */
static int sy_enter_any(sy_env *e)
{
	if (e == NULL)
		return SY_CLOSED;
	if (e->fork_gen != sy_fork_gen)
		return SY_FORKED;
	pthread_rwlock_rdlock(&e->lock);
	if (e->state == 2) {
		pthread_rwlock_unlock(&e->lock);
		return SY_CLOSED;
	}
	return 0;
}

static uint64_t sy_errors(sy_env *e) { return ((se *)e->env)->error.errors; }

static int sy_take(int *busy)
{
	return __atomic_exchange_n(busy, 1, __ATOMIC_ACQUIRE) ? SY_BUSY : 0;
}

static void sy_give(int *busy) { __atomic_store_n(busy, 0, __ATOMIC_RELEASE); }

/* ---- environment ---- */

int sy_env_new(sy_env *e)
{
	pthread_once(&sy_once, sy_init_once);
	memset(e, 0, sizeof(*e));
	if (pthread_rwlock_init(&e->lock, NULL) != 0)
		return SY_NOMEM;
	e->fork_gen = sy_fork_gen;
	e->env = sp_env();
	if (e->env == NULL)
		return SY_NOMEM;
	return 0;
}

int sy_env_setstring(sy_env *e, const char *key, const char *val, int len)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc;
	/* size 0 means strlen() to the engine: hand it a real empty string */
	rc = sp_setstring(e->env, key, len ? val : "", len);
	sy_leave(e);
	return rc == -1 ? SY_ERROR : 0;
}

int sy_env_setint(sy_env *e, const char *key, int64_t val)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc;
	rc = sp_setint(e->env, key, val);
	sy_leave(e);
	return rc == -1 ? SY_ERROR : 0;
}

int sy_env_getint(sy_env *e, const char *key, int64_t *out)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc;
	uint64_t before = sy_errors(e);
	*out = sp_getint(e->env, key);
	/* -1 is also a legal value (#119): only a new error says it failed */
	rc = (*out == -1 && sy_errors(e) != before) ? SY_ERROR : 0;
	sy_leave(e);
	return rc;
}

int sy_env_getstring(sy_env *e, const char *key, char *buf, int cap)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc;
	int size = 0;
	char *s = sp_getstring(e->env, key, &size);
	if (s == NULL) {
		sy_leave(e);
		return SY_ERROR;
	}
	/* the engine counts the terminating NUL in size */
	if (size > 0 && s[size - 1] == 0)
		size--;
	memcpy(buf, s, size < cap ? size : cap);
	free(s);
	sy_leave(e);
	return size;
}

int sy_env_open(sy_env *e)
{
	if (e == NULL)
		return SY_CLOSED;
	if (e->fork_gen != sy_fork_gen)
		return SY_FORKED;
	pthread_rwlock_wrlock(&e->lock);
	int rc;
	if (e->state != 0) {
		rc = e->state == 2 ? SY_CLOSED : SY_BADARG;
	} else {
		rc = sp_open(e->env) == -1 ? SY_ERROR : 0;
		/* a failed open cannot be retried on the same object: the caller closes it */
		if (rc == 0) {
			e->state = 1;
			/* engine bug: a log directory without any log file (a first open that failed
			 * after creating it, deleted files) opens fine, then the first write hangs or
			 * crashes in sw_begin on the empty file list.  Start a file now. */
			swmanager *wm = &((se *)e->env)->wm;
			if (wm->conf.enable && wm->n == 0 && sp_setint(e->env, "log.rotate", 0) == -1)
				rc = SY_ERROR;
		}
	}
	pthread_rwlock_unlock(&e->lock);
	return rc;
}

int sy_env_close(sy_env *e)
{
	if (e == NULL)
		return 0;
	if (e->fork_gen != sy_fork_gen) {
		/* a forked child: the workers do not exist here and the log is the parent's.
		 * Leak the engine object rather than touch it. */
		e->state = 2;
		return 0;
	}
	pthread_rwlock_wrlock(&e->lock);
	int rc = 0;
	if (e->state != 2) {
		e->state = 2;
		if (e->env)
			rc = sp_destroy(e->env) == -1 ? SY_ERROR : 0;
		e->env = NULL;
	}
	pthread_rwlock_unlock(&e->lock);
	return rc;
}

int sy_env_error(sy_env *e, char *buf, int cap)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc;
	/* straight from the error record: sp_getstring(env, "sophia.error") serialises the whole
	 * configuration tree, which crashes on a half-loaded database after a failed open */
	int n = sr_errorcopy(&((se *)e->env)->error, buf, cap);
	sy_leave(e);
	if (n < 0)
		n = 0;
	return n < cap ? n : (cap > 0 ? cap - 1 : 0);
}

/* 0 offline, 1 online, 2 closed, 3 malfunction, 4 other engine state */
int sy_env_status(sy_env *e)
{
	int rc = sy_enter_any(e);
	if (rc)
		return rc == SY_CLOSED ? 2 : rc;
	int st = sr_status(&((se *)e->env)->status);
	sy_leave(e);
	switch (st) {
	case SR_OFFLINE: return 0;
	case SR_ONLINE: return 1;
	case SR_MALFUNCTION: return 3;
	default: return 4;
	}
}

/* ---- databases ---- */

int sy_db_bind(sy_db *d, sy_env *e, const char *name, int nkey, const int *ktypes,
               const int *krev)
{
	if (nkey < 1 || nkey > SY_MAX_KEYS)
		return SY_BADARG;
	int rc = sy_enter(e);
	if (rc)
		return rc;
	char path[256];
	snprintf(path, sizeof(path), "db.%s", name);
	void *db = sp_getobject(e->env, path);
	sy_leave(e);
	if (db == NULL)
		return SY_ERROR;
	memset(d, 0, sizeof(*d));
	d->env = e;
	d->db = db;
	d->nkey = nkey;
	for (int i = 0; i < nkey; i++) {
		d->ktype[i] = ktypes[i];
		d->krev[i] = krev[i];
		if (nkey == 1)
			snprintf(d->kname[i], SY_NAME_MAX, "key");
		else
			snprintf(d->kname[i], SY_NAME_MAX, "key_%d", i);
	}
	snprintf(d->vname, SY_NAME_MAX, "value");
	d->raw = (nkey == 1 && ktypes[0] == SY_T_STRING);
	return 0;
}

/* The scheme the engine actually uses (the on-disk one wins at reopen), as
 * "name=options;name=options;...", hidden fields included. */
int sy_db_scheme(sy_db *d, char *buf, int cap)
{
	int rc = sy_enter(d->env);
	if (rc)
		return rc;
	sfscheme *s = &((sedb *)d->db)->scheme->scheme;
	int n = 0;
	for (int i = 0; i < s->fields_count; i++) {
		sffield *f = s->fields[i];
		int w = snprintf(buf + n, cap > n ? (size_t)(cap - n) : 0, "%s=%s;", f->name,
		                 f->options ? f->options : "");
		if (w < 0)
			break;
		n += w;
	}
	sy_leave(d->env);
	return n < cap ? n : cap;
}

static int sy_width(int t)
{
	switch (t) {
	case SY_T_U8: return 1;
	case SY_T_U16: return 2;
	case SY_T_U32: return 4;
	case SY_T_U64: return 8;
	default: return 0;
	}
}

/* Walk a packed key: for each part, string = u32 length + bytes, integer = 8-byte u64 (native
 * order).  Calls back with the part.  Returns number of parts or SY_BADKEY. */
typedef struct {
	const char *ptr;
	int len;
	uint64_t num;
} sy_part;

static int sy_parse(sy_db *d, const char *key, int klen, sy_part *parts)
{
	if (d->raw) {
		parts[0].ptr = key;
		parts[0].len = klen;
		return 1;
	}
	int i = 0, pos = 0;
	while (pos < klen) {
		if (i >= d->nkey)
			return SY_BADKEY;
		if (d->ktype[i] == SY_T_STRING) {
			uint32_t n;
			if (klen - pos < 4)
				return SY_BADKEY;
			memcpy(&n, key + pos, 4);
			pos += 4;
			if (n > (uint32_t)(klen - pos))
				return SY_BADKEY;
			parts[i].ptr = key + pos;
			parts[i].len = (int)n;
			pos += (int)n;
		} else {
			if (klen - pos < 8)
				return SY_BADKEY;
			memcpy(&parts[i].num, key + pos, 8);
			pos += 8;
		}
		i++;
	}
	return i;
}

static int sy_setkey(sy_db *d, void *doc, const char *key, int klen, int full)
{
	sy_part parts[SY_MAX_KEYS];
	int n = sy_parse(d, key, klen, parts);
	if (n < 0)
		return n;
	if (full && n != d->nkey)
		return SY_BADKEY;
	for (int i = 0; i < n; i++) {
		int rc;
		if (d->ktype[i] == SY_T_STRING)
			rc = sp_setstring(doc, d->kname[i], parts[i].len ? parts[i].ptr : "", parts[i].len);
		else
			rc = sp_setint(doc, d->kname[i], (int64_t)parts[i].num);
		if (rc == -1)
			return SY_ERROR;
	}
	return 0;
}

static int sy_cmp_part(int type, int rev, const sy_part *a, const sy_part *b)
{
	int r;
	if (type == SY_T_STRING) {
		int n = a->len < b->len ? a->len : b->len;
		r = n > 0 ? memcmp(a->ptr, b->ptr, n) : 0;  /* empty parts may have NULL ptr */
		if (r == 0)
			r = (a->len > b->len) - (a->len < b->len);
		else
			r = r > 0 ? 1 : -1;
	} else {
		r = (a->num > b->num) - (a->num < b->num);
	}
	return rev ? -r : r;
}

/* Compare two packed keys in engine order over the parts both have (a partial key equals every
 * key that extends it).  Returns -1/0/1, or SY_BADKEY (-5) on malformed input: callers check
 * for < -1. */
int sy_keycmp(sy_db *d, const char *a, int alen, const char *b, int blen)
{
	sy_part pa[SY_MAX_KEYS], pb[SY_MAX_KEYS];
	int na = sy_parse(d, a, alen, pa);
	int nb = sy_parse(d, b, blen, pb);
	if (na < 0 || nb < 0)
		return SY_BADKEY;
	int n = na < nb ? na : nb;
	for (int i = 0; i < n; i++) {
		int r = sy_cmp_part(d->ktype[i], d->krev[i], &pa[i], &pb[i]);
		if (r)
			return r;
	}
	return 0;
}

/* Resolve the object a read or write goes to, checking that a transaction belongs to the
 * database's environment and is alive. */
static int sy_target(sy_db *d, sy_txn *t, void **obj)
{
	if (t == NULL) {
		*obj = d->db;
		return 0;
	}
	if (t->env != d->env)
		return SY_BADARG;
	if (t->tx == NULL)
		return SY_CLOSED;
	*obj = t->tx;
	return 0;
}

static void sy_op_end(sy_db *d, sy_txn *t)
{
	if (t)
		sy_give(&t->busy);
	sy_leave(d->env);
}

/* Prologue of every operation on a database, directly or through a transaction: enter the
 * environment, claim the transaction, resolve the object to call.  On 0 the caller must
 * sy_op_end(). */
static int sy_op_begin(sy_db *d, sy_txn *t, void **obj)
{
	if (d->env == NULL)
		return SY_CLOSED;
	int rc = sy_enter(d->env);
	if (rc)
		return rc;
	if (t && (rc = sy_take(&t->busy))) {
		sy_leave(d->env);
		return rc;
	}
	rc = sy_target(d, t, obj);
	if (rc)
		sy_op_end(d, t);
	return rc;
}

static int sy_write(sy_db *d, sy_txn *t, const char *key, int klen, const char *val, int vlen,
                    int del)
{
	void *obj;
	int rc = sy_op_begin(d, t, &obj);
	if (rc)
		return rc;
	void *doc = sp_document(d->db);
	if (doc == NULL) {
		rc = SY_ERROR;
		goto out;
	}
	rc = sy_setkey(d, doc, key, klen, 1);
	if (rc == 0 && !del)
		rc = sp_setstring(doc, d->vname, vlen ? val : "", vlen) == -1 ? SY_ERROR : 0;
	if (rc) {
		sp_destroy(doc);  /* never handed to a consuming call */
		goto out;
	}
	/* sp_set/sp_delete consume doc on success and on error */
	uint64_t before = sy_errors(d->env);
	rc = del ? sp_delete(obj, doc) : sp_set(obj, doc);
	/* 1 means "locked by another transaction" unless the engine recorded an error (an
	 * allocation failure: see engine patch 0003) */
	if (rc == 1 && sy_errors(d->env) != before)
		rc = -1;
	rc = rc == -1 ? SY_ERROR : rc == 1 ? SY_LOCKED : 0;
out:
	sy_op_end(d, t);
	return rc;
}

int sy_set(sy_db *d, sy_txn *t, const char *key, int klen, const char *val, int vlen)
{
	return sy_write(d, t, key, klen, val, vlen, 0);
}

int sy_delete(sy_db *d, sy_txn *t, const char *key, int klen)
{
	return sy_write(d, t, key, klen, NULL, 0, 1);
}

int64_t sy_get(sy_db *d, sy_txn *t, const char *key, int klen, char *buf, int64_t cap)
{
	void *obj;
	int rc = sy_op_begin(d, t, &obj);
	if (rc)
		return rc;
	int64_t out;
	void *doc = sp_document(d->db);
	if (doc == NULL) {
		out = SY_ERROR;
		goto done;
	}
	rc = sy_setkey(d, doc, key, klen, 1);
	if (rc) {
		sp_destroy(doc);
		out = rc;
		goto done;
	}
	uint64_t before = sy_errors(d->env);
	void *res = sp_get(obj, doc);  /* consumes doc */
	if (res == NULL) {
		/* NULL is both "not found" and "error": only the error counter tells */
		out = sy_errors(d->env) != before ? SY_ERROR : SY_NOTFOUND;
		goto done;
	}
	int size = 0;
	const char *v = sp_getstring(res, d->vname, &size);
	out = size;
	if (v && size > 0 && cap > 0)
		memcpy(buf, v, size < cap ? size : cap);
	sp_destroy(res);
done:
	sy_op_end(d, t);
	return out;
}

/* Read many keys in one crossing: values land end to end in buf, vlens[i] is the size of value
 * i or -1 when the key is missing.  Returns how many keys were processed (fewer than n when the
 * next value does not fit: call again with the rest), or an error code. */
int sy_get_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                char *buf, int64_t cap, int32_t *vlens)
{
	void *obj;
	int rc = sy_op_begin(d, t, &obj);
	if (rc)
		return rc;
	int64_t ko = 0, used = 0;
	int i;
	for (i = 0; i < n; i++) {
		void *doc = sp_document(d->db);
		if (doc == NULL) {
			rc = SY_ERROR;
			goto out;
		}
		rc = sy_setkey(d, doc, keys + ko, klens[i], 1);
		if (rc) {
			sp_destroy(doc);
			goto out;
		}
		uint64_t before = sy_errors(d->env);
		void *res = sp_get(obj, doc);
		if (res == NULL) {
			if (sy_errors(d->env) != before) {
				rc = SY_ERROR;
				goto out;
			}
			vlens[i] = -1;
		} else {
			int size = 0;
			const char *v = sp_getstring(res, d->vname, &size);
			if (used + size > cap) {
				sp_destroy(res);
				if (i == 0) {
					vlens[0] = size;
					rc = SY_TOOBIG;
					goto out;
				}
				break;
			}
			if (size > 0)
				memcpy(buf + used, v, size);
			used += size;
			vlens[i] = size;
			sp_destroy(res);
		}
		ko += klens[i];
	}
	rc = i;
out:
	sy_op_end(d, t);
	return rc;
}

int sy_set_many(sy_db *d, sy_txn *t, int n, const char *keys, const int32_t *klens,
                const char *vals, const int32_t *vlens)
{
	if (d->env == NULL)
		return SY_CLOSED;
	int rc = sy_enter(d->env);
	if (rc)
		return rc;
	void *tx;
	int own = (t == NULL);
	if (own) {
		tx = sp_begin(d->env->env);
		if (tx == NULL) {
			sy_leave(d->env);
			return SY_ERROR;
		}
	} else {
		if ((rc = sy_take(&t->busy))) {
			sy_leave(d->env);
			return rc;
		}
		if (t->env != d->env || t->tx == NULL) {
			rc = t->env != d->env ? SY_BADARG : SY_CLOSED;
			goto out;
		}
		tx = t->tx;
	}
	int64_t ko = 0, vo = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		void *doc = sp_document(d->db);
		if (doc == NULL) {
			rc = SY_ERROR;
			break;
		}
		rc = sy_setkey(d, doc, keys + ko, klens[i], 1);
		if (rc == 0 && vals)
			rc = sp_setstring(doc, d->vname, vlens[i] ? vals + vo : "", vlens[i]) == -1
			     ? SY_ERROR : 0;
		if (rc) {
			sp_destroy(doc);
			break;
		}
		rc = (vals ? sp_set(tx, doc) : sp_delete(tx, doc)) == -1 ? SY_ERROR : 0;
		ko += klens[i];
		if (vals)
			vo += vlens[i];
	}
	if (own) {
		if (rc) {
			sp_destroy(tx);
		} else {
			int c = sp_commit(tx);
			if (c == 2) {      /* locked by another transaction: give up, roll back */
				sp_destroy(tx);
				rc = SY_LOCKED;
			} else if (c == 1) {
				rc = SY_LOCKED; /* rolled back by a conflict; handle already freed */
			} else if (c == -1) {
				rc = SY_ERROR;
			}
		}
	}
out:
	if (!own)
		sy_give(&t->busy);
	sy_leave(d->env);
	return rc;
}

/* ---- transactions ---- */

int sy_begin(sy_env *e, sy_txn *t)
{
	int rc = sy_enter(e);
	if (rc)
		return rc;
	memset(t, 0, sizeof(*t));
	t->env = e;
	t->tx = sp_begin(e->env);
	sy_leave(e);
	return t->tx ? 0 : SY_ERROR;
}

/* 0 committed, 1 rolled back by conflict, 2 locked (still alive), SY_* on error. */
int sy_commit(sy_txn *t)
{
	int rc = sy_enter(t->env);
	if (rc)
		return rc;
	if ((rc = sy_take(&t->busy))) {
		sy_leave(t->env);
		return rc;
	}
	if (t->tx == NULL) {
		rc = SY_CLOSED;
	} else if (!sr_statusactive_is(sr_status(&((se *)t->env->env)->status))) {
		/* the engine would return -1 and keep the handle: roll back ourselves */
		sp_destroy(t->tx);
		t->tx = NULL;
		rc = SY_ERROR;
	} else {
		rc = sp_commit(t->tx);
		if (rc == 0 || rc == 1) {
			t->tx = NULL;
		} else if (rc == -1) {
			/* a failed log write has already ended (freed) the transaction; only an
			 * allocation failure before that keeps it, and then it is freed with the
			 * environment.  Destroying it here could abort the process. */
			t->tx = NULL;
			rc = SY_ERROR;
		}
	}
	sy_give(&t->busy);
	sy_leave(t->env);
	return rc;
}

int sy_rollback(sy_txn *t)
{
	int rc = sy_enter(t->env);
	if (rc)
		return rc == SY_CLOSED ? 0 : rc;  /* closing the env already rolled it back */
	if ((rc = sy_take(&t->busy))) {
		sy_leave(t->env);
		return rc;
	}
	if (t->tx) {
		sp_destroy(t->tx);
		t->tx = NULL;
	}
	sy_give(&t->busy);
	sy_leave(t->env);
	return 0;
}

/* ---- cursors ---- */

static char *sy_dup(const char *p, int n)
{
	char *r = malloc(n > 0 ? (size_t)n : 1);
	if (r && n > 0)
		memcpy(r, p, n);
	return r;
}

static void sy_cursor_free(sy_cursor *c)
{
	free(c->start);
	free(c->stop);
	free(c->prefix);
	free(c->last);
	free(c->seed);
	c->start = c->stop = c->prefix = c->last = c->seed = NULL;
}

int sy_cursor_open(sy_cursor *c, sy_db *d, sy_txn *view, int order,
                   const char *start, int startlen, const char *prefix, int plen,
                   const char *stop, int stoplen, int stop_incl)
{
	if (order < 0 || order > 3)
		return SY_BADARG;
	if (view && view->env != d->env)
		return SY_BADARG;
	int rc = sy_enter(d->env);
	if (rc)
		return rc;
	memset(c, 0, sizeof(*c));
	c->env = d->env;
	c->db = d;
	c->view = view;
	c->order = order;
	c->stop_incl = stop_incl;
	if (start) {
		c->start = sy_dup(start, startlen);
		c->startlen = startlen;
	}
	if (stop) {
		c->stop = sy_dup(stop, stoplen);
		c->stoplen = stoplen;
	}
	if (prefix) {
		c->prefix = sy_dup(prefix, plen);
		c->plen = plen;
	}
	if ((start && !c->start) || (stop && !c->stop) || (prefix && !c->prefix)) {
		sy_cursor_free(c);
		sy_leave(d->env);
		return SY_NOMEM;
	}
	if (view == NULL) {
		c->cur = sp_cursor(d->env->env);
		if (c->cur == NULL) {
			sy_cursor_free(c);
			sy_leave(d->env);
			return SY_ERROR;
		}
	}
	sy_leave(d->env);
	return 0;
}

/* Serialise the key of document `doc` in packed form into out (or just measure it). */
static int sy_keyout(sy_db *d, void *doc, char *out, int cap)
{
	int n = 0;
	for (int i = 0; i < d->nkey; i++) {
		int size = 0;
		const char *p = sp_getstring(doc, d->kname[i], &size);
		if (d->ktype[i] == SY_T_STRING) {
			if (!d->raw) {
				if (out && n + 4 <= cap) {
					uint32_t s = (uint32_t)size;
					memcpy(out + n, &s, 4);
				}
				n += 4;
			}
			if (out && n + size <= cap && size > 0)
				memcpy(out + n, p, size);
			n += size;
		} else {
			uint64_t v = 0;
			switch (sy_width(d->ktype[i])) {
			case 1: { uint8_t x; memcpy(&x, p, 1); v = x; break; }
			case 2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
			case 4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
			default: memcpy(&v, p, 8); break;
			}
			if (out && n + 8 <= cap)
				memcpy(out + n, &v, 8);
			n += 8;
		}
	}
	return n;
}

/* Is the current row still inside the scan (prefix and stop bound)? */
static int sy_in_range(sy_cursor *c, const char *key, int klen)
{
	sy_db *d = c->db;
	if (c->prefix) {
		sy_part p[SY_MAX_KEYS];
		if (sy_parse(d, key, klen, p) < 1)
			return 0;
		if (p[0].len < c->plen || (c->plen > 0 && memcmp(p[0].ptr, c->prefix, c->plen) != 0))
			return 0;
	}
	if (c->stop) {
		int r = sy_keycmp(d, key, klen, c->stop, c->stoplen);
		if (r < -1)
			return 0;
		int fwd = c->order < 2;
		if (fwd ? (r > 0 || (r == 0 && !c->stop_incl)) : (r < 0 || (r == 0 && !c->stop_incl)))
			return 0;
	}
	return 1;
}

/* 1024 bytes of 0xff: the engine's maximum string key part.  Static, because sp_setstring keeps
 * only the pointer until the document is consumed. */
static char sy_ff[1024];
static pthread_once_t sy_ff_once = PTHREAD_ONCE_INIT;
static void sy_ff_init(void) { memset(sy_ff, 0xff, sizeof(sy_ff)); }

/* Set key parts from..nkey-1 to the engine-order maximum (hi) or minimum (!hi). */
static int sy_fill(sy_db *d, void *doc, int from, int hi)
{
	for (int i = from; i < d->nkey; i++) {
		int rc;
		if (d->ktype[i] == SY_T_STRING)
			rc = hi ? sp_setstring(doc, d->kname[i], sy_ff, sizeof(sy_ff))
			        : sp_setstring(doc, d->kname[i], "", 0);
		else
			/* all ones is the numeric maximum at any width; *_rev types order it first */
			rc = sp_setint(doc, d->kname[i], (hi != d->krev[i]) ? -1 : 0);
		if (rc == -1)
			return SY_ERROR;
	}
	return 0;
}

/* Seed the first seek document: start key, or for a prefix scan the prefix itself. */
static int sy_seed(sy_cursor *c, void *doc, int order)
{
	sy_db *d = c->db;
	pthread_once(&sy_ff_once, sy_ff_init);
	/* a strict order is strict about the given key only: without one, start at the first
	 * (or last) row of the range, which may be the type's minimum (maximum) */
	if (!c->start)
		order = order == 1 ? 0 : order == 3 ? 2 : order;
	if (sp_setstring(doc, "order", sy_orders[order], 0) == -1)
		return SY_ERROR;
	if (c->start) {
		sy_part parts[SY_MAX_KEYS];
		int n = sy_parse(d, c->start, c->startlen, parts);
		if (n < 0)
			return n;
		int rc = sy_setkey(d, doc, c->start, c->startlen, 0);
		/* a partial key stands for its whole group: a strict order skips all of it, so fill
		 * the missing parts with the group's last (for '>') or first (for '<') value; the
		 * engine's own fill is the opposite */
		if (rc == 0 && n < d->nkey && (order == 1 || order == 3))
			rc = sy_fill(d, doc, n, order == 1);
		return rc;
	}
	if (c->prefix && d->ktype[0] == SY_T_STRING) {
		if (order < 2) {
			return sp_setstring(doc, d->kname[0], c->plen ? c->prefix : "", c->plen) == -1
			       ? SY_ERROR : 0;
		}
		/* descending: start at or above every key with this prefix (0xff never occurs in
		 * UTF-8; string key parts are at most 1024 bytes).  The buffer lives in the cursor:
		 * the engine reads it when the seek runs, after we return. */
		if (c->seed == NULL && (c->seed = malloc(sizeof(sy_ff))) == NULL)
			return SY_NOMEM;
		int n = c->plen < (int)sizeof(sy_ff) ? c->plen : (int)sizeof(sy_ff);
		memcpy(c->seed, c->prefix, n);
		memset(c->seed + n, 0xff, sizeof(sy_ff) - n);
		if (sp_setstring(doc, d->kname[0], c->seed, sizeof(sy_ff)) == -1)
			return SY_ERROR;
		return sy_fill(d, doc, 1, 1);
	}
	return 0;
}

/* Advance to the next result document (c->doc, not yet emitted); NULL at the end. */
static int sy_step(sy_cursor *c)
{
	sy_db *d = c->db;
	if (c->view == NULL) {
		void *doc = c->doc;
		c->doc = NULL;
		if (!c->started) {
			doc = sp_document(d->db);
			if (doc == NULL)
				return SY_ERROR;
			int rc = sy_seed(c, doc, c->order);
			if (rc) {
				sp_destroy(doc);
				return rc;
			}
			c->started = 1;
		}
		/* the engine consumes doc and carries order and position forward */
		uint64_t before = sy_errors(c->env);
		c->doc = sp_get(c->cur, doc);
		if (c->doc == NULL && sy_errors(c->env) != before)
			return SY_ERROR;
	} else {
		if (c->view->tx == NULL)
			return SY_CLOSED;
		if (c->doc) {
			sp_destroy(c->doc);
			c->doc = NULL;
		}
		void *doc = sp_document(d->db);
		if (doc == NULL)
			return SY_ERROR;
		int rc;
		if (!c->started) {
			rc = sy_seed(c, doc, c->order);
		} else {
			/* a fresh seek at the snapshot, strictly past the last row */
			rc = sp_setstring(doc, "order", sy_orders[c->order < 2 ? 1 : 3], 0) == -1
			     ? SY_ERROR : sy_setkey(d, doc, c->last, c->lastlen, 1);
		}
		if (rc) {
			sp_destroy(doc);
			return rc;
		}
		c->started = 1;
		uint64_t before = sy_errors(c->env);
		c->doc = sp_get(c->view->tx, doc);
		if (c->doc == NULL && sy_errors(c->env) != before)
			return SY_ERROR;
	}
	c->emitted = 0;
	return 0;
}

/* Fill buf with up to maxrows rows: for row i, its key (if want & 1) then its value (if
 * want & 2); sizes[2i], sizes[2i+1] get their lengths.  Returns rows (0 = the scan is over),
 * SY_TOOBIG with sizes[0] = bytes needed when not even one row fits, or an error. */
int sy_cursor_fetch(sy_cursor *c, char *buf, int64_t cap, int32_t *sizes, int maxrows,
                    int want)
{
	int rc = sy_enter(c->env);
	if (rc)
		return rc;
	if ((rc = sy_take(&c->busy))) {
		sy_leave(c->env);
		return rc;
	}
	/* a view's transaction must not be rolled back under the scan */
	if (c->view && (rc = sy_take(&c->view->busy))) {
		sy_give(&c->busy);
		sy_leave(c->env);
		return rc;
	}
	int rows = 0;
	int64_t used = 0;
	sy_db *d = c->db;
	if (c->done || (c->view == NULL && c->cur == NULL)) {
		rc = 0;
		goto out;
	}
	while (rows < maxrows) {
		if (c->doc == NULL || c->emitted) {
			rc = sy_step(c);
			if (rc)
				goto out;
			if (c->doc == NULL) {
				c->done = 1;
				break;
			}
		}
		int klen = sy_keyout(d, c->doc, NULL, 0);
		/* the row's key is also needed for the range check and the view's next seek */
		if (klen > c->lastcap) {
			char *p = realloc(c->last, klen);
			if (p == NULL) {
				rc = SY_NOMEM;
				goto out;
			}
			c->last = p;
			c->lastcap = klen;
		}
		sy_keyout(d, c->doc, c->last, c->lastcap);
		c->lastlen = klen;
		if (!sy_in_range(c, c->last, klen)) {
			c->done = 1;
			break;
		}
		int vlen = 0;
		const char *v = NULL;
		if (want & 2)
			v = sp_getstring(c->doc, d->vname, &vlen);
		int64_t need = ((want & 1) ? klen : 0) + vlen;
		if (used + need > cap) {
			if (rows == 0) {
				sizes[0] = (int32_t)need;
				rc = SY_TOOBIG;
				goto out;
			}
			break;
		}
		/* counting (want == 0) may ask for more rows than sizes[] holds: write nothing */
		if (want) {
			sizes[2 * rows] = (want & 1) ? klen : 0;
			sizes[2 * rows + 1] = vlen;
		}
		if ((want & 1) && klen > 0) {
			memcpy(buf + used, c->last, klen);
			used += klen;
		}
		if (vlen > 0) {
			memcpy(buf + used, v, vlen);
			used += vlen;
		}
		c->emitted = 1;
		rows++;
	}
	rc = rows;
out:
	if (c->done && c->doc) {
		sp_destroy(c->doc);
		c->doc = NULL;
	}
	if (c->view)
		sy_give(&c->view->busy);
	sy_give(&c->busy);
	sy_leave(c->env);
	return rc;
}

int sy_cursor_close(sy_cursor *c)
{
	if (c->env == NULL)
		return 0;
	int rc = sy_enter(c->env);
	if (rc) {
		/* env gone: the engine freed its objects; only our copies remain */
		if (rc == SY_CLOSED) {
			sy_cursor_free(c);
			c->doc = c->cur = NULL;
			c->done = 1;
			return 0;
		}
		return rc;
	}
	if ((rc = sy_take(&c->busy))) {
		sy_leave(c->env);
		return rc;
	}
	if (c->doc)
		sp_destroy(c->doc);
	if (c->cur)
		sp_destroy(c->cur);
	c->doc = c->cur = NULL;
	c->done = 1;
	sy_cursor_free(c);
	sy_give(&c->busy);
	sy_leave(c->env);
	return 0;
}

/* ---- log checking ---- */

/* The engine's own CRC-32C (hardware-accelerated when the CPU has it), for checking and
 * repairing a log from Python before the engine opens it. */
uint32_t sy_crc32c(uint32_t crc, const char *buf, int len)
{
	static sscrcf fn;
	if (fn == NULL)
		fn = ss_crc32c_function();
	return fn(crc, buf, len);
}
