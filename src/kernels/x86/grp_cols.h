/*
 * x86/grp_cols.h -- the column loop shared by the row-group decode kernels
 * (avx512_decode*.c, avx2_decode*.c).
 *
 * A group kernel takes one group of 16 weight rows against ncols
 * activation rows (one for plain decoding, k + 1 for a speculative
 * verification pass, one per member for ds8b_batch). The kernels used to
 * walk the whole group once per activation row, re-reading it from L2 and
 * redoing its unpacking. DEF_GRP walks it once per four activation rows
 * instead: for each record (one block column of the 16 rows, 288 bytes for
 * Q4_0 up to 3360 for Q6_K) it runs the type's STEP for up to four
 * activation rows in a row, so the record is fetched from memory once and
 * read from L1 by the others, and the prefetches are issued once.
 *
 * STEP(o, a, acc) returns acc plus record o's contribution against
 * activation block a. Every output keeps its own accumulator and the
 * reference's block order (ds8b__mmg_ref), so the results are the ones of
 * the one-row loop, bit for bit, for any ncols (tests/test_kernels.c
 * checks the kernels against the reference for ncols up to 9).
 *
 * Needs, where it is expanded: AI (always_inline) and PF(p, off) (the
 * prefetch of the byte ds8b__grp_pf ahead of p + off).
 */
#ifndef DS8B_GRP_COLS_H
#define DS8B_GRP_COLS_H

enum { DS8B_GRP_COLS = 4 };

/* NAME: the ds8b__mmg_fn; ACT: the activation block type; ACC: the
 * accumulator (ZERO() makes one, STORE(y, acc, nr) writes rows 0..nr-1);
 * REC: bytes per record; UNIT(nb): records per row of nb 32-value units. */
#define DEF_GRP(NAME, ACT, ACC, ZERO, STORE, STEP, REC, UNIT)                                          \
    AI void NAME##_cols(const uint8_t *g, int64_t m, const uint8_t *xa, size_t astride, float *y,        \
                        int64_t ldy, int nr, const int C) {                                              \
        const ACT *a[DS8B_GRP_COLS];                                                                     \
        ACC acc[DS8B_GRP_COLS];                                                                          \
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) {                                            \
            a[c] = (const ACT *)(xa + (size_t)c * astride);                                              \
            acc[c] = ZERO();                                                                             \
        }                                                                                                \
        const uint8_t *o = g;                                                                            \
        for (int64_t b = 0; b < m; b++, o += (REC)) {                                                    \
            for (size_t off = 0; off < (size_t)(REC); off += 64) PF(o, off);                             \
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) acc[c] = STEP(o, &a[c][b], acc[c]);      \
        }                                                                                                \
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) STORE(y + (size_t)c * (size_t)ldy, acc[c], nr); \
    }                                                                                                    \
    static void NAME(const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride, int64_t ncols,     \
                     float *y, int64_t ldy, int nr) {                                                    \
        const int64_t m = UNIT(nb);                                                                      \
        for (int64_t c = 0; c < ncols;) {                                                                \
            int64_t cc = ncols - c < DS8B_GRP_COLS ? ncols - c : DS8B_GRP_COLS;                          \
            const uint8_t *xc = xa + (size_t)c * astride;                                                \
            float *yc = y + (size_t)c * (size_t)ldy;                                                     \
            switch (cc) {                                                                                \
            case 1: NAME##_cols(g, m, xc, astride, yc, ldy, nr, 1); break;                               \
            case 2: NAME##_cols(g, m, xc, astride, yc, ldy, nr, 2); break;                               \
            case 3: NAME##_cols(g, m, xc, astride, yc, ldy, nr, 3); break;                               \
            default: NAME##_cols(g, m, xc, astride, yc, ldy, nr, 4); break;                              \
            }                                                                                            \
            c += cc;                                                                                     \
        }                                                                                                \
    }

#define DS8B_GRP_UNIT32(nb) (nb)
#define DS8B_GRP_UNIT256(nb) ((nb) / 8)

#endif
