/*
 * imatrix.h -- importance matrices: per input column of each matrix, the
 * sum of the squared activations that multiplied it over some calibration
 * text (llama.cpp's imatrix). The quantizer weighs each value's error by
 * its column's mean square activation (quant.c, imp_weights).
 *
 * Files, both of llama.cpp's formats (read), the first one written:
 *   GGUF   general.type = "imatrix"; for each matrix NAME two F32 tensors,
 *          NAME.in_sum2 (ne = [columns, n_mat]) holding the raw sums and
 *          NAME.counts (ne = [1, n_mat]) the number of activation rows
 *          summed; keys imatrix.datasets (array of strings),
 *          imatrix.chunk_count and imatrix.chunk_size (UINT32).
 *   .dat   (llama.cpp before the GGUF one) little-endian: int32 entries;
 *          per entry int32 name length, the name, int32 ncall, int32 nval,
 *          nval float32 holding mean * ncall; then optionally int32 chunk
 *          count, int32 dataset name length and the name.
 * n_mat > 1 (mixture-of-experts matrices) is refused as unsupported: the
 * models this library runs have none.
 */
#ifndef DS8B_IMATRIX_H
#define DS8B_IMATRIX_H

#include "internal.h"

#define DS8B_IMATRIX_MAGIC 0x1a7a1c55u
#define DS8B_IMATRIX_MAX_ENTRIES (1u << 20)
#define DS8B_IMATRIX_MAX_NAME 1024u

typedef struct ds8b__imat_ent {
    char *name;    /* GGUF tensor name, e.g. "blk.0.attn_q.weight" */
    int64_t n;     /* columns */
    float *sum;    /* (n) sums of squared activations (or any positive multiple) */
    double count;  /* what sum is a sum over: mean = sum / count; <= 0 when unknown */
} ds8b__imat_ent;

struct ds8b_imatrix {
    uint32_t magic;
    int64_t n, cap;
    ds8b__imat_ent *e;
    int64_t chunk_count, chunk_size;
    char *dataset; /* NULL if none */
};

/* Parses an imatrix file held in memory (either format, told apart by the
 * GGUF magic). name is used in messages. Every count, length and offset is
 * checked against the buffer; errors are DS8B_E_FORMAT (malformed),
 * DS8B_E_LIMIT or DS8B_E_UNSUPPORTED (n_mat > 1). */
int ds8b__imatrix_parse(const void *data, size_t size, const char *name, ds8b_imatrix **out, ds8b__err *e);
/* The entry of a tensor, or NULL. */
const ds8b__imat_ent *ds8b__imatrix_find(const ds8b_imatrix *im, const char *name);
/* The per-column weights of an entry (sum / count, or sum when count is
 * unknown) into w[0..ent->n). */
void ds8b__imatrix_weights(const ds8b__imat_ent *ent, float *w);

/* Activation statistics gathered by the forward pass (ds8b__fwd.imat):
 * sums of squares per input column, per layer (rows: layer, width). */
typedef struct ds8b__imat_acc {
    int64_t n_layer, d, qd, ff;
    double *attn_in; /* (n_layer, d): input of attn_q, attn_k, attn_v */
    double *o_in;    /* (n_layer, qd): input of attn_output */
    double *ffn_in;  /* (n_layer, d): input of ffn_gate, ffn_up */
    double *down_in; /* (n_layer, ff): input of ffn_down */
    double *out_in;  /* (d): input of the output matrix */
    int64_t rows;    /* activation rows summed (tokens) */
} ds8b__imat_acc;
/* sum[c] += x[r, c]^2 for n rows of width w. */
void ds8b__imat_acc_add(double *sum, const float *x, int64_t n, int64_t w);

#endif
