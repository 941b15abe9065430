/*
 * pool.c -- fork-join thread pool: a generation counter announces a job,
 * workers spin on it briefly and otherwise sleep on a condition variable;
 * the last worker to finish wakes the caller.
 */
#include "threads/pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX_THREADS 256

typedef struct pool_worker {
    struct ds8b__pool *pool;
    int ith;
} pool_worker;

struct ds8b__pool {
    int n;                 /* threads including the caller */
    int n_started;         /* workers actually started */
    pthread_t *th;
    pool_worker *wk;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    _Atomic unsigned gen;  /* bumped once per job */
    _Atomic int pending;   /* workers still running the current job */
    _Atomic int stop;
    _Atomic int spin_us;
    ds8b__task_fn fn;      /* published by the release store of gen */
    void *ctx;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
/* Pause briefly, then yield: on an oversubscribed machine a spinning
 * thread must not keep the core from the thread doing the work. */
static inline void spin_pause(unsigned i) {
    if (i < 64) cpu_relax();
    else sched_yield();
}
static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins up to us microseconds while *v == val; true if it changed. */
static bool spin_while_eq_u(_Atomic unsigned *v, unsigned val, int us) {
    if (us <= 0) return atomic_load_explicit(v, memory_order_acquire) != val;
    int64_t end = now_ns() + (int64_t)us * 1000;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != val) return true;
        spin_pause(i);
        if ((i & 15) == 0 && now_ns() > end) return false;
    }
}
static bool spin_while_pos(_Atomic int *v, int us) {
    if (us <= 0) return atomic_load_explicit(v, memory_order_acquire) <= 0;
    int64_t end = now_ns() + (int64_t)us * 1000;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) <= 0) return true;
        spin_pause(i);
        if ((i & 15) == 0 && now_ns() > end) return false;
    }
}

static void *worker_main(void *arg) {
    pool_worker *w = arg;
    struct ds8b__pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        if (!spin_while_eq_u(&p->gen, seen, atomic_load_explicit(&p->spin_us, memory_order_relaxed))) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_acquire))
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, w->ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

int ds8b__pool_create(int n_threads, ds8b__pool **out, ds8b__err *e) {
    *out = NULL;
    if (n_threads < 0)
        return ds8b__seterr(e, DS8B_E_INVALID, "thread count %d is negative", n_threads);
    if (n_threads == 0) n_threads = online_cpus();
    if (n_threads > POOL_MAX_THREADS) n_threads = POOL_MAX_THREADS;
    struct ds8b__pool *p = ds8b__calloc(DS8B_MEM_THREADS, 1, sizeof *p);
    if (!p) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the thread pool");
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->spin_us, 50);
    if (n_threads == 1) {
        *out = p;
        return DS8B_OK;
    }
    p->th = ds8b__calloc(DS8B_MEM_THREADS, (size_t)n_threads, sizeof *p->th);
    p->wk = ds8b__calloc(DS8B_MEM_THREADS, (size_t)n_threads, sizeof *p->wk);
    if (!p->th || !p->wk) {
        ds8b__free(p->th);
        ds8b__free(p->wk);
        ds8b__free(p);
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the thread pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    /* Workers block all signals: they belong to the host application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 1; i < n_threads; i++) {
        p->wk[i].pool = p;
        p->wk[i].ith = i;
        rc = pthread_create(&p->th[i], NULL, worker_main, &p->wk[i]);
        if (rc) break;
        p->n_started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        int started = p->n_started;
        ds8b__pool_free(p);
        return ds8b__seterr(e, DS8B_E_NOMEM, "could not start thread %d of %d (%d started)",
                            started + 2, n_threads, started + 1);
    }
    *out = p;
    return DS8B_OK;
}

void ds8b__pool_free(ds8b__pool *p) {
    if (!p) return;
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i <= p->n_started; i++) pthread_join(p->th[i], NULL);
        pthread_cond_destroy(&p->cv_work);
        pthread_cond_destroy(&p->cv_done);
        pthread_mutex_destroy(&p->mu);
    }
    ds8b__free(p->th);
    ds8b__free(p->wk);
    ds8b__free(p);
}

int ds8b__pool_size(const ds8b__pool *p) { return p ? p->n : 1; }

void ds8b__pool_set_spin_us(ds8b__pool *p, int us) {
    if (p) atomic_store_explicit(&p->spin_us, us < 0 ? 0 : us > 100000 ? 100000 : us, memory_order_relaxed);
}

void ds8b__pool_run(ds8b__pool *p, ds8b__task_fn fn, void *ctx) {
    if (!p || p->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    if (!spin_while_pos(&p->pending, atomic_load_explicit(&p->spin_us, memory_order_relaxed))) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
