/* errors.c -- error codes, messages and logging. */
#include "internal.h"

#include <stdio.h>

static _Thread_local char tl_errmsg[1024];

int ds8b__seterr(ds8b__err *e, int code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void ds8b__errprefix(ds8b__err *e, const char *fmt, ...) {
    if (!e) return;
    char pre[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char tmp[sizeof e->msg];
    snprintf(tmp, sizeof tmp, "%s: %s", pre, e->msg);
    memcpy(e->msg, tmp, sizeof tmp);
}

void ds8b__set_last_error(const ds8b__err *e) {
    if (!e) { tl_errmsg[0] = 0; return; }
    snprintf(tl_errmsg, sizeof tl_errmsg, "%s", e->msg[0] ? e->msg : ds8b_errstr(e->code));
}

DS8B_API const char *ds8b_errmsg(void) { return tl_errmsg; }

DS8B_API const char *ds8b_errstr(int code) {
    switch (code) {
    case DS8B_OK: return "not an error";
    case DS8B_E_INVALID: return "invalid argument";
    case DS8B_E_MISUSE: return "library misuse (bad handle or call order)";
    case DS8B_E_NOMEM: return "out of memory";
    case DS8B_E_IO: return "I/O error";
    case DS8B_E_FORMAT: return "malformed or corrupt data";
    case DS8B_E_UNSUPPORTED: return "unsupported";
    case DS8B_E_CONTEXT_FULL: return "context is full";
    case DS8B_E_CANCELLED: return "cancelled";
    case DS8B_E_BUFFER: return "buffer too small";
    case DS8B_E_TEMPLATE: return "chat template error";
    case DS8B_E_LIMIT: return "limit exceeded";
    case DS8B_E_CHECKSUM: return "checksum mismatch";
    case DS8B_E_MISMATCH: return "data does not match this model or version";
    case DS8B_E_INTERNAL: return "internal error";
    case DS8B_E_GRAMMAR: return "grammar error";
    default: return "unknown error code";
    }
}

DS8B_API int ds8b_version_number(void) { return DS8B_VERSION_NUMBER; }
DS8B_API const char *ds8b_version(void) { return DS8B_VERSION_STRING; }

void ds8b__logf(const ds8b__log *log, int level, const char *fmt, ...) {
    if (!log || !log->fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log->fn(log->user, level, buf);
}
