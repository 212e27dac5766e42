/*
 * bench_sophia.c: the "raw-c" floor of the sophy benchmark suite.
 *
 * Runs the same workloads as bench/workloads.py directly against the pinned Sophia 2.2
 * amalgamation, so the Python figures can be read as "how much do we pay above the engine".
 * It is compiled by bench/build_c.py with the engine's own flags and prints one JSON object on
 * stdout: {"results": {workload: {"ops": n, "seconds": s}}, "errors": {workload: message}}.
 *
 * usage: bench_sophia N DIR SEED
 *        bench_sophia --churn CYCLES DIR    (memory baseline: RSS growth of the engine alone)
 *        bench_sophia --scan ROWS DIR       (memory baseline: peak RSS growth of a full scan)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sophia.h"

#define KEY_LEN 13   /* "key%010d" */
#define VAL_LEN 100
#define RANGE_ROWS 100
#define PREFIX_ROWS 1000
#define BATCH_ROWS 1000
#define MULTI_ROWS 100
#define TXN_ROWS 100

static int n_rows;
static void *env, *db;
static char value_buf[VAL_LEN + 1];
static int first_result = 1, first_error = 1;
static char errors[8192];

/* xorshift64*: a tiny deterministic PRNG so runs are repeatable without libc rand() state. */
static uint64_t rng_state;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void make_key(char *out, int i) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "key%010d", i);
    memcpy(out, tmp, KEY_LEN);
}

/* a missing key sorts between stored ones ("key000000123x"), so lookups miss mid-tree */
static void make_missing_key(char *out, int i) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "key%09dx", i % 1000000000);
    memcpy(out, tmp, KEY_LEN);
}

static int *permutation(int n) {
    int *p = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng() % (uint64_t)(i + 1));
        int t = p[i]; p[i] = p[j]; p[j] = t;
    }
    return p;
}

static void report(const char *name, long ops, double seconds) {
    printf("%s\"%s\": {\"ops\": %ld, \"seconds\": %.9f}", first_result ? "" : ", ", name, ops, seconds);
    first_result = 0;
}

static void fail(const char *name, const char *msg) {
    size_t used = strlen(errors);
    snprintf(errors + used, sizeof errors - used, "%s\"%s\": \"%s\"", first_error ? "" : ", ", name, msg);
    first_error = 0;
}

static int set_one(void *target, const char *key) {
    void *doc = sp_document(db);
    sp_setstring(doc, "key", key, KEY_LEN);
    sp_setstring(doc, "value", value_buf, VAL_LEN);
    return sp_set(target, doc);
}

/* returns 1 if found; reads the value pointer so the lookup is not optimised into nothing */
static int get_one(const char *key) {
    void *doc = sp_document(db);
    sp_setstring(doc, "key", key, KEY_LEN);
    void *res = sp_get(db, doc);
    if (!res) return 0;
    int size = 0;
    const char *v = sp_getstring(res, "value", &size);
    int ok = v != NULL && size == VAL_LEN;
    sp_destroy(res);
    return ok;
}

/* iterate from `start` (NULL = first) with an optional prefix; stop after `limit` rows (or at
 * `stop`, inclusive, when given). Returns the number of rows seen. */
static long scan(const char *start, const char *stop, const char *prefix, int prefix_len, long limit) {
    void *cursor = sp_cursor(env);
    void *doc = sp_document(db);
    long rows = 0;
    sp_setstring(doc, "order", ">=", 0);
    if (start) sp_setstring(doc, "key", start, KEY_LEN);
    if (prefix) sp_setstring(doc, "prefix", prefix, prefix_len);
    while ((doc = sp_get(cursor, doc))) {
        int ksize = 0, vsize = 0;
        const char *k = sp_getstring(doc, "key", &ksize);
        const char *v = sp_getstring(doc, "value", &vsize);
        if (stop && memcmp(k, stop, KEY_LEN) > 0) { sp_destroy(doc); break; }
        if (k == NULL || v == NULL) { sp_destroy(doc); break; }
        rows++;
        if (limit > 0 && rows >= limit) { sp_destroy(doc); break; }
    }
    sp_destroy(cursor);
    return rows;
}

/* write `count` batches of `size` random existing keys, each batch one transaction */
static int txn_batches(long count, int size) {
    char key[KEY_LEN];
    for (long b = 0; b < count; b++) {
        void *tx = sp_begin(env);
        for (int i = 0; i < size; i++) {
            make_key(key, (int)(rng() % (uint64_t)n_rows));
            if (set_one(tx, key) != 0) return -1;
        }
        if (sp_commit(tx) != 0) return -1;
    }
    return 0;
}

struct thread_arg { const int *idx; long count; long found; };

static void *thread_get(void *p) {
    struct thread_arg *a = p;
    char key[KEY_LEN];
    for (long i = 0; i < a->count; i++) {
        make_key(key, a->idx[i]);
        a->found += get_one(key);
    }
    return NULL;
}

static void threaded_gets(int nthreads, const int *perm) {
    pthread_t th[8];
    struct thread_arg args[8];
    long per = n_rows / nthreads;
    char name[32];
    double t0 = now();
    for (int t = 0; t < nthreads; t++) {
        args[t].idx = perm + t * per; args[t].count = per; args[t].found = 0;
        pthread_create(&th[t], NULL, thread_get, &args[t]);
    }
    long found = 0;
    for (int t = 0; t < nthreads; t++) { pthread_join(th[t], NULL); found += args[t].found; }
    double dt = now() - t0;
    snprintf(name, sizeof name, "threads_%d", nthreads);
    if (found != per * nthreads) fail(name, "missing rows");
    else report(name, per * nthreads, dt);
}

static void *open_env(const char *path) {
    void *e = sp_env();
    sp_setstring(e, "sophia.path", path, 0);
    sp_setstring(e, "db", "test", 0);
    if (sp_open(e) != 0) { fprintf(stderr, "sp_open failed\n"); exit(2); }
    db = sp_getobject(e, "db.test");
    return e;
}

/* a "Field:   123 kB" line of /proc/self/status */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t len = strlen(field);
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') { kb = atol(line + len + 1); break; }
    fclose(f);
    return kb;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

/* The same fill and scan as bench/memory.py: batches of 10,000 in one transaction each, then one
 * full scan; peak RSS (VmHWM, reset through clear_refs) minus RSS before the scan. */
static int scan_peak(long rows, const char *dir) {
    char path[4096], key[KEY_LEN];
    snprintf(path, sizeof path, "%s/scan", dir);
    env = open_env(path);
    for (long i = 0; i < rows; i += 10000) {
        void *tx = sp_begin(env);
        for (long j = i; j < i + 10000 && j < rows; j++) { make_key(key, (int)j); set_one(tx, key); }
        if (sp_commit(tx) != 0) { fprintf(stderr, "commit failed\n"); return 1; }
    }
    long before = rss_kb(), anon0 = status_kb("RssAnon"), file0 = status_kb("RssFile");
    FILE *f = fopen("/proc/self/clear_refs", "w");
    int exact = f != NULL && fputs("5", f) >= 0;
    if (f) fclose(f);
    double t0 = now();
    long seen = scan(NULL, NULL, NULL, 0, 0);
    double dt = now() - t0;
    long peak = exact ? status_kb("VmHWM") : rss_kb();
    printf("{\"memory\": {\"full_scan\": {\"rows\": %ld, \"expected_rows\": %ld, "
           "\"growth_mb\": %.3f, \"anon_growth_mb\": %.3f, \"file_growth_mb\": %.3f, "
           "\"method\": \"%s\", \"seconds\": %.6f}}, \"errors\": {}}\n", seen, rows,
           (peak - before) / 1024.0, (status_kb("RssAnon") - anon0) / 1024.0,
           (status_kb("RssFile") - file0) / 1024.0, exact ? "VmHWM after clear_refs" : "VmRSS", dt);
    sp_destroy(env);
    return 0;
}

/* The same set/get/delete cycle as bench/memory.py, so a growth seen there can be split into
 * "the engine does this too" and "the binding leaks". */
static int churn(long cycles, const char *dir) {
    char path[4096], key[KEY_LEN];
    snprintf(path, sizeof path, "%s/churn", dir);
    env = open_env(path);
    /* warm up with as many cycles as are measured: the engine's in-memory index grows by ~70 MB
     * over the first million cycles before it reaches steady state */
    long warm = cycles, before = 0, ok = 0;
    double t0 = 0;
    for (int pass = 0; pass < 2; pass++) {
        long count = pass == 0 ? warm : cycles;
        if (pass == 1) { before = rss_kb(); t0 = now(); }
        for (long i = 0; i < count; i++) {
            make_key(key, (int)(i % 1000));
            set_one(db, key);
            ok += get_one(key);
            void *doc = sp_document(db);
            sp_setstring(doc, "key", key, KEY_LEN);
            sp_delete(db, doc);
        }
    }
    double dt = now() - t0;
    long after = rss_kb();
    printf("{\"memory\": {\"churn\": {\"cycles\": %ld, \"ok\": %ld, \"growth_mb\": %.3f, "
           "\"seconds\": %.6f}}, \"errors\": {}}\n", cycles, ok - warm, (after - before) / 1024.0, dt);
    sp_destroy(env);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--churn") == 0) return churn(atol(argv[2]), argv[3]);
    if (argc == 4 && strcmp(argv[1], "--scan") == 0) return scan_peak(atol(argv[2]), argv[3]);
    if (argc != 4) { fprintf(stderr, "usage: %s N DIR SEED\n", argv[0]); return 2; }
    n_rows = atoi(argv[1]);
    rng_state = (uint64_t)strtoull(argv[3], NULL, 10) * 2654435761ULL + 88172645463325252ULL;
    memset(value_buf, 'v', VAL_LEN);
    char path[4096], key[KEY_LEN], stop[KEY_LEN];
    double t0;
    long found;
    int *perm = permutation(n_rows);

    printf("{\"results\": {");

    /* sequential set into a fresh environment */
    snprintf(path, sizeof path, "%s/seq", argv[2]);
    env = open_env(path);
    t0 = now();
    for (int i = 0; i < n_rows; i++) { make_key(key, i); set_one(db, key); }
    report("seq_set", n_rows, now() - t0);
    sp_destroy(env);

    /* random-order set into another fresh environment; the read workloads then use this one */
    snprintf(path, sizeof path, "%s/rand", argv[2]);
    env = open_env(path);
    t0 = now();
    for (int i = 0; i < n_rows; i++) { make_key(key, perm[i]); set_one(db, key); }
    report("rand_set", n_rows, now() - t0);

    int *gperm = permutation(n_rows);
    t0 = now();
    found = 0;
    for (int i = 0; i < n_rows; i++) { make_key(key, gperm[i]); found += get_one(key); }
    if (found != n_rows) fail("rand_get", "missing rows"); else report("rand_get", n_rows, now() - t0);

    t0 = now();
    found = 0;
    for (int i = 0; i < n_rows; i++) { make_missing_key(key, gperm[i]); found += get_one(key); }
    if (found != 0) fail("missing_get", "found absent rows"); else report("missing_get", n_rows, now() - t0);

    t0 = now();
    found = scan(NULL, NULL, NULL, 0, 0);
    if (found != n_rows) fail("full_scan", "row count"); else report("full_scan", found, now() - t0);

    long nrange = n_rows / 100 < 20 ? 20 : n_rows / 100;
    if (nrange > 2000) nrange = 2000;
    int bad = 0;
    t0 = now();
    for (long r = 0; r < nrange; r++) {
        int s = (int)(rng() % (uint64_t)(n_rows - RANGE_ROWS + 1));
        make_key(key, s); make_key(stop, s + RANGE_ROWS - 1);
        if (scan(key, stop, NULL, 0, 0) != RANGE_ROWS) bad = 1;
    }
    if (bad) fail("range_100", "row count"); else report("range_100", nrange, now() - t0);

    /* prefix "key" + 7 digits selects 1,000 consecutive keys */
    long nprefix = n_rows / PREFIX_ROWS;
    if (nprefix > 200) nprefix = 200;
    bad = 0;
    t0 = now();
    for (long r = 0; r < nprefix; r++) {
        char p[32];
        snprintf(p, sizeof p, "key%07d", (int)(rng() % (uint64_t)(n_rows / PREFIX_ROWS)));
        if (scan(NULL, NULL, p, 10, 0) != PREFIX_ROWS) bad = 1;
    }
    if (bad || nprefix == 0) fail("prefix_scan", "row count"); else report("prefix_scan", nprefix, now() - t0);

    long nbatch = n_rows / BATCH_ROWS < 2 ? 2 : n_rows / BATCH_ROWS;
    t0 = now();
    if (txn_batches(nbatch, BATCH_ROWS) != 0) fail("batch_1000", "commit failed");
    else report("batch_1000", nbatch, now() - t0);

    /* the engine has no multi-get: 100 point lookups is what any binding's multi_get does */
    long nmulti = n_rows / MULTI_ROWS;
    bad = 0;
    t0 = now();
    for (long m = 0; m < nmulti; m++) {
        int f = 0;
        for (int i = 0; i < MULTI_ROWS; i++) { make_key(key, (int)(rng() % (uint64_t)n_rows)); f += get_one(key); }
        if (f != MULTI_ROWS) bad = 1;
    }
    if (bad) fail("multi_get_100", "missing rows"); else report("multi_get_100", nmulti, now() - t0);

    long ntxn = n_rows / TXN_ROWS;
    t0 = now();
    if (txn_batches(ntxn, TXN_ROWS) != 0) fail("txn_100", "commit failed");
    else report("txn_100", ntxn, now() - t0);

    threaded_gets(1, gperm);
    threaded_gets(2, gperm);
    threaded_gets(4, gperm);

    sp_destroy(env);
    printf("}, \"errors\": {%s}}\n", errors);
    free(perm); free(gperm);
    return 0;
}
