/*
 * sampler.c -- token sampling: repetition penalty, top-k, top-p, min-p,
 * temperature, and a seeded xoroshiro128+ RNG so runs are reproducible.
 *
 * Order: penalty -> (greedy if temperature <= 0) -> temperature -> softmax
 * -> top-k -> top-p -> min-p -> renormalise -> draw.
 */
#include "session/session.h"
#include "grammar/grammar.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[2]) {
    uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
    s1 ^= s0;
    s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    s[1] = rotl(s1, 37);
    return r;
}

double ds8b__rng_uniform(uint64_t st[2]) { return (double)(next_u64(st) >> 11) * (1.0 / 9007199254740992.0); }

void ds8b__sampler_seed(ds8b__sampler *s, uint64_t seed) {
    uint64_t x = seed;
    s->rng[0] = splitmix64(&x);
    s->rng[1] = splitmix64(&x);
}

int ds8b__sampler_init(ds8b__sampler *s, int64_t n_vocab, const ds8b__sampler_params *p, ds8b__err *e) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    s->idx = ds8b__xmalloc(DS8B_MEM_SESSION, (size_t)n_vocab * sizeof(int32_t), "sampler candidates", e);
    s->prob = ds8b__xmalloc(DS8B_MEM_SESSION, (size_t)n_vocab * sizeof(float), "sampler probabilities", e);
    if (!s->idx || !s->prob) {
        ds8b__sampler_free(s);
        return DS8B_E_NOMEM;
    }
    ds8b__sampler_seed(s, p->seed);
    return DS8B_OK;
}

void ds8b__sampler_free(ds8b__sampler *s) {
    ds8b__free(s->idx);
    ds8b__free(s->prob);
    s->idx = NULL;
    s->prob = NULL;
}

/* Sorts candidates by descending value; ties by ascending id so the order
 * is fully determined. */
static void sort_desc(int32_t *idx, float *val, int64_t n) {
    /* heap sort on (val desc, idx asc): deterministic, no recursion */
#define LESS(a, b) (val[a] > val[b] || (val[a] == val[b] && idx[a] < idx[b]))
#define SWAP(a, b) do { float tv = val[a]; val[a] = val[b]; val[b] = tv; \
                        int32_t ti = idx[a]; idx[a] = idx[b]; idx[b] = ti; } while (0)
    for (int64_t start = n / 2 - 1; start >= 0; start--) {
        int64_t r = start;
        for (;;) {
            int64_t c = 2 * r + 1;
            if (c >= n) break;
            if (c + 1 < n && LESS(c, c + 1)) c++;
            if (!LESS(r, c)) break;
            SWAP(r, c);
            r = c;
        }
    }
    for (int64_t end = n - 1; end > 0; end--) {
        SWAP(0, end);
        int64_t r = 0;
        for (;;) {
            int64_t c = 2 * r + 1;
            if (c >= end) break;
            if (c + 1 < end && LESS(c, c + 1)) c++;
            if (!LESS(r, c)) break;
            SWAP(r, c);
            r = c;
        }
    }
#undef LESS
#undef SWAP
}

/* Partial selection: moves the k best candidates to the front, sorted. */
static int64_t select_top(int32_t *idx, float *val, int64_t n, int64_t k) {
    if (k <= 0 || k >= n) {
        sort_desc(idx, val, n);
        return n;
    }
    /* threshold by a bounded pass: keep a running min-heap of size k */
    int64_t h = 0;
#define WORSE(a, b) (val[a] < val[b] || (val[a] == val[b] && idx[a] > idx[b]))
#define SWAP(a, b) do { float tv = val[a]; val[a] = val[b]; val[b] = tv; \
                        int32_t ti = idx[a]; idx[a] = idx[b]; idx[b] = ti; } while (0)
    for (int64_t i = 0; i < n; i++) {
        if (h < k) {
            SWAP(h, i);
            int64_t c = h++;
            while (c > 0) {
                int64_t p = (c - 1) / 2;
                if (!WORSE(c, p)) break;
                SWAP(c, p);
                c = p;
            }
        } else if (WORSE(0, i)) {
            SWAP(0, i);
            int64_t r = 0;
            for (;;) {
                int64_t c = 2 * r + 1;
                if (c >= k) break;
                if (c + 1 < k && WORSE(c + 1, c)) c++;
                if (!WORSE(c, r)) break;
                SWAP(r, c);
                r = c;
            }
        }
    }
#undef WORSE
#undef SWAP
    sort_desc(idx, val, k);
    return k;
}

/* Candidates = logits with the repetition penalty over the last
 * repeat_last_n tokens (each id once). */
static void fill_penalized(ds8b__sampler *s, const float *logits, const int32_t *history, int64_t n_history) {
    const ds8b__sampler_params *p = &s->p;
    int64_t n = s->n_vocab;
    int32_t *idx = s->idx;
    float *val = s->prob;
    for (int64_t i = 0; i < n; i++) {
        idx[i] = (int32_t)i;
        val[i] = logits[i];
    }
    if (p->repeat_penalty != 1.0 && p->repeat_last_n != 0 && n_history > 0) {
        int64_t from = p->repeat_last_n < 0 || p->repeat_last_n > n_history ? 0 : n_history - p->repeat_last_n;
        for (int64_t i = from; i < n_history; i++) {
            int32_t t = history[i];
            if (t < 0 || t >= n) continue;
            bool seen = false;
            for (int64_t j = from; j < i; j++)
                if (history[j] == t) { seen = true; break; }
            if (seen) continue;
            float v = val[t];
            val[t] = v > 0 ? v / (float)p->repeat_penalty : v * (float)p->repeat_penalty;
        }
    }
}

/* The k best candidates, sorted, in idx/val[0..k): temperature, softmax,
 * top-p, min-p, one uniform draw. */
static int32_t draw_sorted(ds8b__sampler *s, int64_t k) {
    const ds8b__sampler_params *p = &s->p;
    int32_t *idx = s->idx;
    float *val = s->prob;
    float mx = val[0], inv_t = (float)(1.0 / p->temperature);
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++) {
        val[i] = expf((val[i] - mx) * inv_t);
        sum += val[i];
    }
    for (int64_t i = 0; i < k; i++) val[i] = (float)(val[i] / sum);
    /* top-p: smallest prefix whose mass reaches top_p */
    if (p->top_p < 1.0) {
        double c = 0.0;
        for (int64_t i = 0; i < k; i++) {
            c += val[i];
            if (c >= p->top_p) { k = i + 1; break; }
        }
    }
    /* min-p: drop candidates below min_p times the best */
    if (p->min_p > 0.0) {
        float thr = (float)(p->min_p * val[0]);
        int64_t keep = 1;
        while (keep < k && val[keep] >= thr) keep++;
        k = keep;
    }
    double mass = 0.0;
    for (int64_t i = 0; i < k; i++) mass += val[i];
    double r = ds8b__rng_uniform(s->rng) * mass, acc = 0.0;
    for (int64_t i = 0; i < k; i++) {
        acc += val[i];
        if (r < acc) return idx[i];
    }
    return idx[k - 1];
}

int32_t ds8b__sample(ds8b__sampler *s, const float *logits, const int32_t *history, int64_t n_history) {
    const ds8b__sampler_params *p = &s->p;
    int64_t n = s->n_vocab;
    fill_penalized(s, logits, history, n_history);
    int32_t *idx = s->idx;
    float *val = s->prob;
    /* greedy: first index of the maximum */
    if (p->temperature <= 0.0) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (val[i] > val[best]) best = i;
        return (int32_t)best;
    }
    int64_t k = select_top(idx, val, n, p->top_k);
    return draw_sorted(s, k);
}

/* ------------------------------------------------------------------ */
/* Sampling over allowed tokens only (grammars)                        */
/* ------------------------------------------------------------------ */
/* The result is exactly the sampler above run over the allowed tokens
 * alone (as if every other logit were -inf): penalty, then greedy = the
 * first allowed token in the order (value desc, id asc), or the top_k best
 * allowed tokens in that order -> temperature, top-p, min-p, one draw.
 * Both depend only on the first top_k (greedy: 1) allowed tokens of the
 * sorted order, so the fast path sorts a few more than top_k candidates
 * and tests them one by one; when fewer than needed pass, the full mask
 * (f->mask) is computed and the same selection runs over all allowed
 * tokens. Either way the same tokens in the same order reach the same
 * arithmetic, and exactly one uniform draw is made (none for greedy): the
 * RNG advances identically on both paths. top_k == 0 (off) always takes
 * the full mask, since softmax then normalises over every allowed token. */
#define FAST_EXTRA 32

int ds8b__sample_filtered(ds8b__sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                          ds8b__tfilter *f, int32_t *out, ds8b__err *e) {
    const ds8b__sampler_params *p = &s->p;
    int64_t n = s->n_vocab;
    int32_t *idx = s->idx;
    float *val = s->prob;
    bool greedy = p->temperature <= 0.0;
    int64_t need = greedy ? 1 : p->top_k;
    int rc;
    fill_penalized(s, logits, history, n_history);
    if (need > 0 && !f->force_full) {
        int64_t K = need + FAST_EXTRA < n ? need + FAST_EXTRA : n;
        select_top(idx, val, n, K);
        int64_t got = 0;
        for (int64_t i = 0; i < K && got < need; i++) {
            bool ok = false;
            if ((rc = f->allows(f->ctx, idx[i], &ok, e))) return rc;
            if (!ok) continue;
            idx[got] = idx[i];
            val[got] = val[i];
            got++;
        }
        if (got == need || (K == n && got > 0)) {
            f->n_fast++;
            *out = greedy ? idx[0] : draw_sorted(s, got);
            return 0;
        }
        if (K == n) return ds8b__seterr(e, DS8B_E_GRAMMAR, "no token of the vocabulary can continue the grammar");
        fill_penalized(s, logits, history, n_history);
    }
    f->n_full++;
    if ((rc = f->mask(f->ctx, f->allow, e))) return rc;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!f->allow[i]) continue;
        idx[m] = idx[i];
        val[m] = val[i];
        m++;
    }
    if (m == 0) return ds8b__seterr(e, DS8B_E_GRAMMAR, "no token of the vocabulary can continue the grammar");
    if (greedy) { /* first allowed id of the maximum */
        int64_t best = 0;
        for (int64_t i = 1; i < m; i++)
            if (val[i] > val[best]) best = i;
        *out = idx[best];
        return 0;
    }
    int64_t k = select_top(idx, val, m, p->top_k);
    *out = draw_sorted(s, k);
    return 0;
}
