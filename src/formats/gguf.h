/*
 * gguf.h -- the GGUF container: a hardened reader and a streaming writer.
 *
 * Reader. ds8b__gguf_open() maps a file; ds8b__gguf_parse_mem() reads a
 * caller's buffer (not copied: it must outlive the handle). Either way the
 * whole header is validated before the call returns: every metadata value
 * (nested arrays included), every tensor info, alignment, bounds and
 * overlaps of tensor data. After that every accessor below is a plain,
 * bounds-safe lookup and the handle is read-only (any number of threads may
 * use it at once).
 *
 * GGUF v2 and v3, little-endian. Strings in GGUF are NOT NUL-terminated:
 * string getters return a pointer into the file plus a length. Keys and
 * tensor names are the exception: they are copied and NUL-terminated (a
 * key or name holding a NUL byte is refused).
 *
 * Raw array elements returned by ds8b__gguf_get_arr() point into the file
 * and may be unaligned: read them with memcpy (or use the element helpers).
 *
 * Writer. Streams a GGUF v3 file to "PATH.tmp" and renames it to PATH only
 * when ds8b__gguf_writer_finish() succeeds; on any failure or abort the
 * temporary file is removed. Order of calls:
 *     create -> add_kv_* / add_tensor_info (any mix) -> write_header
 *            -> write_tensor_data (tensor 0, 1, ... in order; a tensor may
 *               be given in several chunks) -> finish (or abort at any time)
 * The writer adds general.quantized_by = "libds8b <version>" and
 * ds8b.tensor_crc32 (one UINT32 zlib CRC-32 per tensor, in tensor order)
 * with ds8b.tensor_table_digest beside it: a digest of the tensor table the
 * CRCs belong to (count, alignment, then each tensor's name, type, shape
 * and data offset), "fnv1a64:" and 16 hex digits. ds8b__gguf_verify_crc()
 * checks the CRCs only when the file's table has that digest: other tools
 * (llama-quantize, gguf-py) copy unknown metadata while rewriting tensors,
 * which leaves checksums of another table behind.
 */
#ifndef DS8B_GGUF_H
#define DS8B_GGUF_H

#include "internal.h"

/* Metadata value types (GGUF numbering). */
enum {
    DS8B_GGUF_UINT8 = 0,
    DS8B_GGUF_INT8 = 1,
    DS8B_GGUF_UINT16 = 2,
    DS8B_GGUF_INT16 = 3,
    DS8B_GGUF_UINT32 = 4,
    DS8B_GGUF_INT32 = 5,
    DS8B_GGUF_FLOAT32 = 6,
    DS8B_GGUF_BOOL = 7,
    DS8B_GGUF_STRING = 8,
    DS8B_GGUF_ARRAY = 9,
    DS8B_GGUF_UINT64 = 10,
    DS8B_GGUF_INT64 = 11,
    DS8B_GGUF_FLOAT64 = 12,
    DS8B_GGUF__NTYPES = 13
};

#define DS8B_GGUF_DEFAULT_ALIGNMENT 32u
#define DS8B_GGUF_MAX_ALIGNMENT (1u << 20)  /* general.alignment above this is refused */
#define DS8B_GGUF_MAX_KEY 65535u            /* bytes in a key */
#define DS8B_GGUF_MAX_NAME 64u              /* bytes in a tensor name (reader) */
#define DS8B_GGUF_MAX_DEPTH 8               /* nesting of arrays of arrays */
#define DS8B_GGUF_MAX_KVS (1u << 20)        /* metadata entries (DS8B_E_LIMIT above) */
#define DS8B_GGUF_MAX_TENSORS (1u << 20)    /* tensors (DS8B_E_LIMIT above) */
#define DS8B_GGUF_CRC_KEY "ds8b.tensor_crc32"
#define DS8B_GGUF_TDIGEST_KEY "ds8b.tensor_table_digest"
#define DS8B_GGUF_TDIGEST_LEN 24 /* "fnv1a64:" + 16 hex digits */
#define DS8B_GGUF_QUANTIZED_BY_KEY "general.quantized_by"

/* "uint32", "string", ... or "unknown". */
const char *ds8b__gguf_type_name(int type);
/* Encoded size of one value of a fixed-size type; 0 for STRING, ARRAY and
 * unknown types. */
size_t ds8b__gguf_type_size(int type);

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */
typedef struct ds8b__gguf ds8b__gguf;

/* Maps and parses path. */
int ds8b__gguf_open(const char *path, ds8b__gguf **out, ds8b__err *e);
/* Parses a buffer; name is used in messages (may be NULL). */
int ds8b__gguf_parse_mem(const void *data, size_t size, const char *name, ds8b__gguf **out,
                         ds8b__err *e);
void ds8b__gguf_close(ds8b__gguf *g); /* accepts NULL */

uint32_t ds8b__gguf_version(const ds8b__gguf *g);
const char *ds8b__gguf_name(const ds8b__gguf *g);    /* path or given name */
uint32_t ds8b__gguf_alignment(const ds8b__gguf *g);
/* The whole file, and the offset of the (aligned) tensor data section. */
const void *ds8b__gguf_base(const ds8b__gguf *g, size_t *size);
uint64_t ds8b__gguf_data_offset(const ds8b__gguf *g);

/* --- metadata --- */
int64_t ds8b__gguf_n_kv(const ds8b__gguf *g);
int64_t ds8b__gguf_find_key(const ds8b__gguf *g, const char *key); /* -1 if absent */
const char *ds8b__gguf_kv_key(const ds8b__gguf *g, int64_t i);     /* NULL if out of range */
int ds8b__gguf_kv_type(const ds8b__gguf *g, int64_t i);            /* -1 if out of range */

/* Typed getters by key. A missing key or a value that is not of a fitting
 * type gives DS8B_E_FORMAT, naming the file, the key and the actual type.
 * Integer getters accept any integer type whose value fits; get_f32/f64
 * accept FLOAT32 and FLOAT64 (a FLOAT64 beyond float range is refused by
 * get_f32); get_bool accepts BOOL only. */
int ds8b__gguf_get_u32(const ds8b__gguf *g, const char *key, uint32_t *v, ds8b__err *e);
int ds8b__gguf_get_i32(const ds8b__gguf *g, const char *key, int32_t *v, ds8b__err *e);
int ds8b__gguf_get_u64(const ds8b__gguf *g, const char *key, uint64_t *v, ds8b__err *e);
int ds8b__gguf_get_i64(const ds8b__gguf *g, const char *key, int64_t *v, ds8b__err *e);
int ds8b__gguf_get_f32(const ds8b__gguf *g, const char *key, float *v, ds8b__err *e);
int ds8b__gguf_get_f64(const ds8b__gguf *g, const char *key, double *v, ds8b__err *e);
int ds8b__gguf_get_bool(const ds8b__gguf *g, const char *key, bool *v, ds8b__err *e);
int ds8b__gguf_get_str(const ds8b__gguf *g, const char *key, const char **s, size_t *len,
                       ds8b__err *e);
/* An integer key that must lie in [lo, hi] (message names the range). */
int ds8b__gguf_get_int_range(const ds8b__gguf *g, const char *key, int64_t lo, int64_t hi,
                             int64_t *v, ds8b__err *e);
/* An array key: its element type, count and the first element's bytes
 * (for fixed-size element types, count * type_size bytes follow). Any
 * elem_type accepted; check it yourself. */
int ds8b__gguf_get_arr(const ds8b__gguf *g, const char *key, int *elem_type, uint64_t *count,
                       const void **raw, ds8b__err *e);

/* Elements of the top-level array held by KV i (as from find_key).
 * O(1) for every element type, strings included (an offset index is built
 * at parse time). Numeric accessors convert like the getters above. All
 * return DS8B_E_FORMAT (message names the key) on a type mismatch or an
 * index out of range; e may be NULL. */
int ds8b__gguf_arr_str(const ds8b__gguf *g, int64_t kv, uint64_t idx, const char **s,
                       size_t *len, ds8b__err *e);
int ds8b__gguf_arr_i64(const ds8b__gguf *g, int64_t kv, uint64_t idx, int64_t *v, ds8b__err *e);
int ds8b__gguf_arr_f32(const ds8b__gguf *g, int64_t kv, uint64_t idx, float *v, ds8b__err *e);

/* Generic views for walking any value, nested arrays included. */
typedef struct ds8b__gguf_val {
    int type;            /* DS8B_GGUF_* */
    const uint8_t *p;    /* scalar: its bytes; STRING: its characters;
                            ARRAY: the first element */
    uint64_t len;        /* STRING: bytes; ARRAY: element count; else 0 */
    int elem_type;       /* ARRAY only, else -1 */
    size_t size;         /* encoded bytes from p to the end of the value */
} ds8b__gguf_val;
int ds8b__gguf_kv_val(const ds8b__gguf *g, int64_t i, ds8b__gguf_val *v);
/* Element idx of an ARRAY view: O(1) for fixed-size elements, a walk for
 * STRING/ARRAY elements of nested arrays. DS8B_E_INVALID if out of range. */
int ds8b__gguf_val_elem(const ds8b__gguf_val *arr, uint64_t idx, ds8b__gguf_val *out);
/* Scalar conversions of a view (DS8B_E_FORMAT if the type does not fit). */
int ds8b__gguf_val_i64(const ds8b__gguf_val *v, int64_t *out);
int ds8b__gguf_val_u64(const ds8b__gguf_val *v, uint64_t *out);
int ds8b__gguf_val_f64(const ds8b__gguf_val *v, double *out); /* FLOAT32/64 */

/* --- tensors --- */
int64_t ds8b__gguf_n_tensors(const ds8b__gguf *g);
/* ds8b__tensor.data points into the file (never owned). NULL if out of range. */
const ds8b__tensor *ds8b__gguf_tensor(const ds8b__gguf *g, int64_t i);
const ds8b__tensor *ds8b__gguf_find_tensor(const ds8b__gguf *g, const char *name);
int64_t ds8b__gguf_find_tensor_index(const ds8b__gguf *g, const char *name); /* -1 if absent */
/* Offset of tensor i's data from the start of the file (0 if out of range). */
uint64_t ds8b__gguf_tensor_file_offset(const ds8b__gguf *g, int64_t i);

/* ds8b.tensor_crc32: true if the file carries it (with the right shape)
 * and it is not stale. */
bool ds8b__gguf_has_crc(const ds8b__gguf *g);
/* What the file's checksums are worth. */
enum {
    DS8B_GGUF_CRC_NONE = 0, /* no ds8b.tensor_crc32 */
    DS8B_GGUF_CRC_BOUND,    /* digest matches this table: verified, mismatch = DS8B_E_CHECKSUM */
    DS8B_GGUF_CRC_STALE,    /* computed for another table (digest differs, or no digest and
                               another tensor count): not verified, logged */
    DS8B_GGUF_CRC_LEGACY,   /* no digest (files written before it existed): verified, a
                               mismatch is logged as a warning, not an error */
    DS8B_GGUF_CRC_BAD,      /* the CRC key is not a UINT32 array (of the table's length,
                               when the digest matches): DS8B_E_FORMAT */
};
int ds8b__gguf_crc_state(const ds8b__gguf *g);
/* Checks the tensors' CRC-32s as the state above says; warnings go to log
 * (may be NULL). DS8B_E_CHECKSUM names the first tensor that does not
 * match its bound checksum; DS8B_E_FORMAT for a malformed key. */
int ds8b__gguf_verify_crc_log(const ds8b__gguf *g, const ds8b__log *log, ds8b__err *e);
int ds8b__gguf_verify_crc(const ds8b__gguf *g, ds8b__err *e); /* log = NULL */
/* One tensor against its CRC, bound or legacy (OK when the file has none
 * or they are stale). */
int ds8b__gguf_verify_tensor_crc(const ds8b__gguf *g, int64_t i, ds8b__err *e);
/* The table digest, shared by the reader and the writer. */
typedef struct ds8b__gguf_tdigest { uint64_t h; } ds8b__gguf_tdigest;
void ds8b__gguf_tdigest_init(ds8b__gguf_tdigest *d, uint64_t n_tensors, uint32_t alignment);
void ds8b__gguf_tdigest_add(ds8b__gguf_tdigest *d, const char *name, int type, int n_dims, const int64_t *ne,
                            uint64_t off);
void ds8b__gguf_tdigest_str(const ds8b__gguf_tdigest *d, char out[DS8B_GGUF_TDIGEST_LEN + 1]);
/* zlib CRC-32 of any length (size_t). */
uint32_t ds8b__gguf_crc32(uint32_t crc, const void *data, size_t n);

/* Validates one encoded value of the given type at p[0..size): returns its
 * encoded length in *used. Shared by the reader and the writer. The
 * message (no file or key prefix) says what is wrong. */
int ds8b__gguf_check_value(int type, const uint8_t *p, size_t size, size_t *used, int depth,
                           ds8b__err *e);

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */
typedef struct ds8b__gguf_writer ds8b__gguf_writer;

int ds8b__gguf_writer_create(const char *path, ds8b__gguf_writer **out, ds8b__err *e);

/* Metadata. Keys must be unique and non-empty. "general.alignment" must be
 * a UINT32 power of two <= DS8B_GGUF_MAX_ALIGNMENT and sets the alignment.
 * Keys the writer manages itself (general.quantized_by, ds8b.tensor_crc32,
 * ds8b.tensor_table_digest)
 * are skipped silently, so metadata can be copied from another file.
 * All must come before write_header. */
int ds8b__gguf_writer_add_u8(ds8b__gguf_writer *w, const char *key, uint8_t v, ds8b__err *e);
int ds8b__gguf_writer_add_i8(ds8b__gguf_writer *w, const char *key, int8_t v, ds8b__err *e);
int ds8b__gguf_writer_add_u16(ds8b__gguf_writer *w, const char *key, uint16_t v, ds8b__err *e);
int ds8b__gguf_writer_add_i16(ds8b__gguf_writer *w, const char *key, int16_t v, ds8b__err *e);
int ds8b__gguf_writer_add_u32(ds8b__gguf_writer *w, const char *key, uint32_t v, ds8b__err *e);
int ds8b__gguf_writer_add_i32(ds8b__gguf_writer *w, const char *key, int32_t v, ds8b__err *e);
int ds8b__gguf_writer_add_u64(ds8b__gguf_writer *w, const char *key, uint64_t v, ds8b__err *e);
int ds8b__gguf_writer_add_i64(ds8b__gguf_writer *w, const char *key, int64_t v, ds8b__err *e);
int ds8b__gguf_writer_add_f32(ds8b__gguf_writer *w, const char *key, float v, ds8b__err *e);
int ds8b__gguf_writer_add_f64(ds8b__gguf_writer *w, const char *key, double v, ds8b__err *e);
int ds8b__gguf_writer_add_bool(ds8b__gguf_writer *w, const char *key, bool v, ds8b__err *e);
int ds8b__gguf_writer_add_str(ds8b__gguf_writer *w, const char *key, const char *s, size_t len,
                              ds8b__err *e);
/* Array of a fixed-size element type; data holds count host-order values
 * (BOOL: one byte each, 0 or 1). */
int ds8b__gguf_writer_add_arr(ds8b__gguf_writer *w, const char *key, int elem_type,
                              const void *data, uint64_t count, ds8b__err *e);
/* Array of strings; lens may be NULL (then strs are NUL-terminated). */
int ds8b__gguf_writer_add_arr_str(ds8b__gguf_writer *w, const char *key,
                                  const char *const *strs, const size_t *lens, uint64_t count,
                                  ds8b__err *e);
/* Any value, already GGUF-encoded (validated before it is written): used
 * for nested arrays and for copying. */
int ds8b__gguf_writer_add_raw(ds8b__gguf_writer *w, const char *key, int type,
                              const void *encoded, size_t size, ds8b__err *e);
/* Copies KV i of another file as it is. */
int ds8b__gguf_writer_copy_kv(ds8b__gguf_writer *w, const ds8b__gguf *src, int64_t i,
                              ds8b__err *e);

/* Tensor infos, in the order their data will follow. name: 1..63 bytes,
 * unique; type: a GGUF tensor type; 1..4 dims, each > 0, ne[0] a whole
 * number of blocks. *index (may be NULL) receives the tensor's index. */
int ds8b__gguf_writer_add_tensor_info(ds8b__gguf_writer *w, const char *name, int type,
                                      int n_dims, const int64_t *ne, int64_t *index,
                                      ds8b__err *e);
/* Bytes of data tensor i takes (0 if out of range). */
size_t ds8b__gguf_writer_tensor_nbytes(const ds8b__gguf_writer *w, int64_t i);

/* Writes the header (metadata and tensor infos); freezes both. */
int ds8b__gguf_writer_write_header(ds8b__gguf_writer *w, ds8b__err *e);
/* Appends data of tensor i: i must be the tensor being written (tensors go
 * in order; a tensor may come in several chunks; the writer moves to the
 * next one when all its bytes have come). */
int ds8b__gguf_writer_write_tensor_data(ds8b__gguf_writer *w, int64_t i, const void *data,
                                        size_t nbytes, ds8b__err *e);
/* Fills in the CRCs, syncs and renames PATH.tmp to PATH. Frees w whatever
 * happens; on failure the temporary file is removed. */
int ds8b__gguf_writer_finish(ds8b__gguf_writer *w, ds8b__err *e);
/* Discards everything (removes PATH.tmp) and frees w. Accepts NULL. */
void ds8b__gguf_writer_abort(ds8b__gguf_writer *w);

/* A growable buffer for building encoded values (nested arrays) to pass to
 * ds8b__gguf_writer_add_raw. Failures are sticky: check .failed at the end. */
typedef struct ds8b__gguf_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} ds8b__gguf_buf;
void ds8b__gguf_buf_bytes(ds8b__gguf_buf *b, const void *data, size_t n);
void ds8b__gguf_buf_u32(ds8b__gguf_buf *b, uint32_t v);
void ds8b__gguf_buf_u64(ds8b__gguf_buf *b, uint64_t v);
void ds8b__gguf_buf_str(ds8b__gguf_buf *b, const char *s, size_t len); /* u64 len + bytes */
/* Header of an array value: element type then count; the caller then adds
 * the count elements (for nested arrays: each one's own header and elements). */
void ds8b__gguf_buf_arr(ds8b__gguf_buf *b, int elem_type, uint64_t count);
void ds8b__gguf_buf_free(ds8b__gguf_buf *b);

#endif /* DS8B_GGUF_H */
