/* safetensors.h -- reading Hugging Face safetensors checkpoints.
 *
 * A ds8b__st is a set of memory-mapped safetensors files (one file, or the
 * shards named by model.safetensors.index.json) and the table of the tensors
 * they hold. Tensor data points straight into the maps; nothing is copied.
 *
 * Tensors are converted to ds8b__tensor with ne[] reversed from the
 * safetensors shape (shape [out, in] -> ne[0] = in, ne[1] = out); unused
 * dimensions have ne = 1. A scalar (shape []) has n_dims = 0.
 *
 * dtypes: BF16, F16 and F32 map to DS8B_T_BF16/F16/F32. Other dtypes the
 * format defines (F64, I64, I32, I16, I8, U8, U16, U32, U64, BOOL, F8_E4M3,
 * F8_E5M2, F8_E8M0) are parsed and validated like the rest, and the tensor
 * is kept in the table with type DS8B__ST_T_OTHER (no ds8b__type_info):
 * loaders must refuse it where they need it (ds8b__st_dtype() names the
 * dtype for the message). A dtype string outside that list is
 * DS8B_E_FORMAT naming the tensor and the dtype.
 *
 * The data of BF16/F16/F32 tensors must be aligned to the element size in
 * the file (every writer pads the header to 8 bytes); a misaligned one is
 * DS8B_E_UNSUPPORTED naming the tensor.
 */
#ifndef DS8B_SAFETENSORS_H
#define DS8B_SAFETENSORS_H

#include "internal.h"

/* Type of a tensor whose dtype is valid safetensors but not one we compute
 * with. ds8b__type_info() returns NULL for it. */
#define DS8B__ST_T_OTHER (-1)

/* Largest JSON header accepted (bytes). */
#define DS8B__ST_MAX_HEADER (100u << 20)

typedef struct ds8b__st ds8b__st; /* a set of mapped safetensors files */

/* dir: a checkpoint directory. Uses model.safetensors.index.json when present
 * (weight_map: tensor name -> shard file; shard names may not contain '/',
 * '\\' or ".."), else model.safetensors. Every shard is mmapped. Every tensor
 * of the index must be in the shard it names; a tensor name found in two
 * shards is an error. */
int ds8b__st_open_dir(const char *dir, ds8b__st **out, ds8b__err *e);
/* One safetensors file, mmapped. */
int ds8b__st_open_file(const char *path, ds8b__st **out, ds8b__err *e);
/* One buffer holding a whole safetensors file (for fuzzing and tests). The
 * buffer is not copied and must outlive the handle. name is used in
 * messages. */
int ds8b__st_parse_mem(const void *data, size_t size, const char *name, ds8b__st **out,
                       ds8b__err *e);
/* The index part of ds8b__st_open_dir with the index JSON given in memory
 * (for fuzzing); the shards are still read from dir. name names the index
 * in messages. */
int ds8b__st_open_index_mem(const char *dir, const char *json, size_t len, const char *name,
                            ds8b__st **out, ds8b__err *e);
void ds8b__st_close(ds8b__st *s); /* accepts NULL */

int64_t ds8b__st_n_tensors(const ds8b__st *s);
/* Tensor i (0 <= i < n_tensors), or NULL when out of range. */
const ds8b__tensor *ds8b__st_tensor(const ds8b__st *s, int64_t i);
/* The tensor with this name, or NULL if absent. O(1) (hash table). */
const ds8b__tensor *ds8b__st_find(const ds8b__st *s, const char *name);
/* The safetensors dtype string of tensor t of this set ("BF16", "I64"...). */
const char *ds8b__st_dtype(const ds8b__st *s, const ds8b__tensor *t);
/* Sum of the sizes of the files mapped (0 for ds8b__st_parse_mem). */
int64_t ds8b__st_mapped_bytes(const ds8b__st *s);

#endif
