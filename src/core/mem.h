/* mem.h -- memory accounting internals (scopes, limits, fault injection). */
#ifndef DS8B_MEM_H
#define DS8B_MEM_H

#include "internal.h"

#include <stdatomic.h>

/* Per-handle accounting. A model and each session own a scope; a session's
 * scope has the model's as parent, so model totals include its sessions. */
typedef struct ds8b__memscope {
    _Atomic int64_t cur[DS8B_MEM__COUNT];
    _Atomic int64_t peak[DS8B_MEM__COUNT];
    struct ds8b__memscope *parent;
} ds8b__memscope;

void ds8b__memscope_init(ds8b__memscope *s, ds8b__memscope *parent);
/* Makes s the current scope of this thread; returns the previous one,
 * which the caller passes to ds8b__memscope_leave(). */
ds8b__memscope *ds8b__memscope_enter(ds8b__memscope *s);
void ds8b__memscope_leave(ds8b__memscope *old);

/* True if allocating extra more bytes would pass the soft limit. */
bool ds8b__mem_over_soft(size_t extra);
/* Bytes obtained from the allocator, including headers and alignment. */
int64_t ds8b__mem_reserved(void);
/* Test hook: make the n-th allocation from now fail (0 = off). */
void ds8b__mem_fail_at(int64_t n);
int64_t ds8b__mem_alloc_count(void);

#endif
