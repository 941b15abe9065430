/* fuzz_session_state.c -- ds8b_session_load() on arbitrary bytes.
 *
 * The demo-llama model is loaded once (path from DS8B_SHARED, else
 * ../shared) with one session of a short context (32 tokens, so that full
 * contexts and sliding are reachable). Each input is tried three ways:
 *   1. as is;
 *   2. with the model fingerprint and both CRC-32s patched to be right, so
 *      mutations get past the checksums into the payload parser;
 *   3. as an uncompressed payload, wrapped in a valid header.
 * After a successful restore the session samples, evaluates a token and
 * generates two more, so restored parameters (policy, sink, sampler) are
 * exercised, then it is replaced by a fresh one.
 *
 * Built with -DDS8B_SEED_MAIN this file is instead a program that writes
 * the seed corpus into the directory given as its argument. */
#include "internal.h"
#include "session/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define HDR 48u

static ds8b_model *g_model;
static ds8b_session *g_sess;
static uint64_t g_fp;

static ds8b_session *new_session(void) {
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    if (ds8b_params_create(&p)) return NULL;
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 32);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
    ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, 8);
    if (ds8b_session_create(g_model, p, &s)) s = NULL;
    ds8b_params_free(p);
    return s;
}

static int setup(void) {
    if (g_model) return g_sess ? 0 : -1;
    const char *sh = getenv("DS8B_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/demo-llama", sh && *sh ? sh : "../shared");
    if (ds8b_model_load(path, NULL, &g_model)) {
        fprintf(stderr, "fuzz_session_state: cannot load %s: %s\n", path, ds8b_errmsg());
        return -1;
    }
    g_fp = ds8b__model_fingerprint(g_model);
    g_sess = new_session();
    return g_sess ? 0 : -1;
}

static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t rd64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i); return v; }

static int sink_piece(void *u, const char *p, size_t n, int ch) { (void)u; (void)p; (void)n; (void)ch; return 0; }

/* Loads buf into the session; on success uses the session, then replaces it. */
static void try_load(const uint8_t *buf, size_t len) {
    if (ds8b_session_load(g_sess, buf, len) != 0) return;
    int32_t t = 0;
    if (ds8b_session_logits(g_sess) && ds8b_sample(g_sess, &t) == 0 && ds8b_session_n_past(g_sess) < 32)
        ds8b_eval(g_sess, &t, 1, NULL);
    ds8b_session_set_int(g_sess, DS8B_PARAM_MAX_TOKENS, 2);
    ds8b_generate(g_sess, " a", 2, 0, sink_piece, NULL, NULL);
    ds8b_session_free(g_sess);
    g_sess = new_session(); /* NULL makes later calls return DS8B_E_MISUSE */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (setup()) return 0;
    /* 1. as is */
    try_load(data, size);
    /* 2. checksums and fingerprint made right */
    if (size >= HDR) {
        uint8_t *c = malloc(size);
        if (!c) return 0;
        memcpy(c, data, size);
        le64(c + 16, g_fp);
        uint64_t clen = rd64(c + 32);
        if (clen <= size - HDR) le32(c + 40, (uint32_t)crc32(0L, c + HDR, (uInt)clen));
        le32(c + 44, (uint32_t)crc32(0L, c, 44));
        try_load(c, size);
        free(c);
    }
    /* 3. a payload in a valid envelope */
    uLong bound = compressBound((uLong)size);
    uint8_t *w = malloc(HDR + bound);
    if (!w) return 0;
    uLongf clen = bound;
    if (compress2(w + HDR, &clen, data, (uLong)size, 1) == Z_OK) {
        memcpy(w, "DS8BSES", 8);
        le32(w + 8, 1);
        le32(w + 12, 0);
        le64(w + 16, g_fp);
        le64(w + 24, size);
        le64(w + 32, clen);
        le32(w + 40, (uint32_t)crc32(0L, w + HDR, (uInt)clen));
        le32(w + 44, (uint32_t)crc32(0L, w, 44));
        try_load(w, HDR + clen);
    }
    free(w);
    return 0;
}

#ifdef DS8B_SEED_MAIN
/* Seed writer: real states of a few sessions, their uncompressed payloads,
 * and truncated / corrupted variants. */
static char g_dir[4096];
static int g_nseeds;

static void put_file(const char *name, const void *d, size_t n) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(d, 1, n, f);
    fclose(f);
    g_nseeds++;
}

static uint8_t *save(ds8b_session *s, size_t *n) {
    size_t need = 0;
    ds8b_session_save(s, NULL, 0, &need);
    uint8_t *b = malloc(need);
    if (b && ds8b_session_save(s, b, need, n) != 0) { free(b); return NULL; }
    return b;
}

int main(int argc, char **argv) {
    if (argc < 2 || setup()) { fprintf(stderr, "usage: %s DIR (with DS8B_SHARED set)\n", argv[0]); return 2; }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    /* three sessions: a short prompt; stop strings and sampling params;
     * a full context with the sliding policy */
    struct { const char *name; int n; int slide; int stops; } v[3] = {
        {"state-5tok", 5, 0, 0}, {"state-stops", 9, 0, 1}, {"state-full-slide", 32, 1, 0}};
    for (int k = 0; k < 3; k++) {
        ds8b_params *p = NULL;
        ds8b_params_create(&p);
        ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 32);
        ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
        ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, 8);
        if (v[k].slide) {
            ds8b_params_set_int(p, DS8B_PARAM_CTX_POLICY, DS8B_CTX_SLIDE);
            ds8b_params_set_int(p, DS8B_PARAM_N_SINK, 2);
        }
        if (v[k].stops) {
            ds8b_params_add_stop(p, "\n\n");
            ds8b_params_add_stop(p, "User:");
            ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.7);
            ds8b_params_set_int(p, DS8B_PARAM_TOP_K, 7);
            ds8b_params_set_float(p, DS8B_PARAM_REPEAT_PENALTY, 1.1);
        }
        ds8b_session *s = NULL;
        if (ds8b_session_create(g_model, p, &s)) { fprintf(stderr, "%s\n", ds8b_errmsg()); return 1; }
        ds8b_params_free(p);
        int32_t ids[32];
        for (int i = 0; i < v[k].n; i++) ids[i] = (int32_t)((i * 97 + 11 + k) % 8000);
        ids[0] = 8184;
        ds8b_eval(s, ids, (size_t)v[k].n, NULL);
        if (v[k].stops) { int32_t t; ds8b_sample(s, &t); }
        size_t n = 0;
        uint8_t *st = save(s, &n);
        ds8b_session_free(s);
        if (!st) { fprintf(stderr, "save: %s\n", ds8b_errmsg()); return 1; }
        char name[128];
        put_file(v[k].name, st, n);
        /* its payload, uncompressed (fuzzed through way 3) */
        uLongf raw = (uLongf)rd64(st + 24);
        uint8_t *pl = malloc(raw ? raw : 1);
        if (pl && uncompress(pl, &raw, st + HDR, (uLong)rd64(st + 32)) == Z_OK) {
            snprintf(name, sizeof name, "payload-%s", v[k].name + 6);
            if (k != 2) put_file(name, pl, raw); /* the full one is large */
        }
        free(pl);
        if (k == 0) {
            static const size_t cut[] = {0, 7, 8, 43, 44, 47, 48, 60, 200};
            for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
                snprintf(name, sizeof name, "trunc-%zu", cut[i]);
                put_file(name, st, cut[i]);
            }
            snprintf(name, sizeof name, "trunc-last");
            put_file(name, st, n - 1);
            static const size_t flip[] = {0, 8, 12, 16, 24, 32, 40, 44, 48, 100};
            for (size_t i = 0; i < sizeof flip / sizeof *flip; i++) {
                st[flip[i]] ^= 0x40;
                snprintf(name, sizeof name, "flip-%zu", flip[i]);
                put_file(name, st, n);
                st[flip[i]] ^= 0x40;
            }
            /* a newer format version with valid CRCs */
            le32(st + 8, 2);
            le32(st + 44, (uint32_t)crc32(0L, st, 44));
            put_file("version-2", st, n);
        }
        free(st);
    }
    printf("wrote %d seeds to %s\n", g_nseeds, g_dir);
    return 0;
}
#endif
