/*
 * pool.h -- a small fork-join thread pool (pthreads).
 *
 * ds8b__pool_run(p, fn, ctx) calls fn(ctx, ith, nth) once on each of the
 * nth threads (the caller is ith 0) and returns when all have finished.
 * Workers spin a few microseconds after a job (the forward pass issues
 * jobs back to back), then sleep on a condition variable: an idle pool
 * burns no CPU. A pool of one thread has no workers and runs inline.
 * Jobs must not call ds8b__pool_run on the same pool.
 */
#ifndef DS8B_POOL_H
#define DS8B_POOL_H

#include "internal.h"

typedef struct ds8b__pool ds8b__pool;
typedef void (*ds8b__task_fn)(void *ctx, int ith, int nth);

/* n_threads total, including the caller; 0 = number of online CPUs.
 * Capped at 256. */
int ds8b__pool_create(int n_threads, ds8b__pool **out, ds8b__err *e);
void ds8b__pool_free(ds8b__pool *p);
/* Threads of the pool (1 for NULL). */
int ds8b__pool_size(const ds8b__pool *p);
/* p may be NULL: fn then runs once inline as (ctx, 0, 1). */
void ds8b__pool_run(ds8b__pool *p, ds8b__task_fn fn, void *ctx);
/* Spin time of idle workers before they sleep, in microseconds (default
 * 50; 0 sleeps at once). */
void ds8b__pool_set_spin_us(ds8b__pool *p, int us);

#endif
