/*
 * chat_api.c -- conversations: the model's own chat template rendered by
 * the library, generation with separate reasoning and answer channels, and
 * KV-cache reuse of the shared prefix across turns.
 */
#include "session/session.h"

#include "chat/chat_template.h"
#include "chat/toolcall.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#define DS8B_CHAT_MAGIC 0xc4a7c4a7u

struct ds8b_chat {
    uint32_t magic;
    ds8b_session *s;
    cJSON *messages;     /* [{role, content, ...}, ...] */
    cJSON *tools;        /* tool definitions (a JSON array), or NULL */
    cJSON *vars;         /* extra template variables (a JSON object), or NULL */
    cJSON *last_calls;   /* tool calls of the last reply: [{type, function: {name, arguments}}] */
    char *last_reply;    /* answer text of the last reply */
    char *last_reasoning;
    bool in_reply;       /* inside ds8b_chat_reply: its callback may run */
    bool free_deferred;  /* ds8b_chat_free was called from that callback */
    ds8b__err err;
};

/* ------------------------------------------------------------------ */
/* Template selection                                                  */
/* ------------------------------------------------------------------ */
/* The template: the model's (GGUF metadata), else the tokenizer's
 * (tokenizer_config.json), else the DeepSeek-R1 built-in (both 8B models
 * use the R1 format). */
static const char *template_src(const char *model_tmpl, const ds8b_tokenizer *tok) {
    const char *src = model_tmpl;
    if (!src && tok) src = ds8b__tok_chat_template(tok);
    if (!src) src = ds8b__tmpl_builtin("deepseek-r1");
    return src;
}

static int get_template(const char *model_tmpl, const ds8b_tokenizer *tok, ds8b__tmpl **out, ds8b__err *e) {
    const char *src = template_src(model_tmpl, tok);
    if (!src) return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "no chat template");
    return ds8b__tmpl_compile(src, strlen(src), out, e);
}

/* bos_token / eos_token strings for the template. */
static const char *special_str(const ds8b_tokenizer *t, bool bos, char *buf, size_t cap) {
    const char *s = t ? (bos ? ds8b__tok_bos_str(t) : ds8b__tok_eos_str(t)) : NULL;
    if (!s && t) {
        int32_t id = bos ? ds8b__tok_bos(t) : ds8b__tok_eos(t);
        size_t len;
        if (id >= 0 && ds8b__tok_token_bytes(t, id, buf, cap - 1, &len)) {
            buf[len] = 0;
            return buf;
        }
    }
    return s ? s : "";
}

static int render_with(const char *model_tmpl, const ds8b_tokenizer *tok, const cJSON *messages, const cJSON *extra,
                       bool add_gen, char **out, size_t *len, ds8b__err *e) {
    ds8b__tmpl *t = NULL;
    int rc = get_template(model_tmpl, tok, &t, e);
    if (rc) return rc;
    char b1[256], b2[256];
    const char *bos = special_str(tok, true, b1, sizeof b1), *eos = special_str(tok, false, b2, sizeof b2);
    /* variables override the special tokens, as in transformers ({**special_tokens_map, **kwargs}) */
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(extra, "bos_token");
    const cJSON *ve = cJSON_GetObjectItemCaseSensitive(extra, "eos_token");
    if (cJSON_IsString(vb)) bos = vb->valuestring;
    if (cJSON_IsString(ve)) eos = ve->valuestring;
    rc = ds8b__tmpl_render(t, messages, add_gen, bos, eos, extra, out, len, e);
    ds8b__tmpl_free(t);
    return rc;
}

static int chat_render(const ds8b_model *m, const cJSON *messages, const cJSON *extra, bool add_gen, char **out,
                       size_t *len, ds8b__err *e) {
    return render_with(m->chat_template, m->tok ? m->tok->tok : NULL, messages, extra, add_gen, out, len, e);
}

/* Variables the renderer sets itself: vars may not name them. */
static const char *reserved_var(const cJSON *vars) {
    static const char *const reserved[] = {"messages", "tools", "add_generation_prompt"};
    for (const cJSON *it = vars->child; it; it = it->next)
        for (size_t r = 0; r < sizeof reserved / sizeof *reserved; r++)
            if (it->string && strcmp(it->string, reserved[r]) == 0) return reserved[r];
    return NULL;
}

/* Builds the template's extra globals as transformers passes them:
 * tools (null when none) plus the caller's variables. tools must be a JSON
 * array or null, vars a JSON object; vars may not redefine the variables
 * the renderer sets itself. *out is NULL-free on success. */
static int build_extra(const char *tools_json, size_t tools_len, const char *vars_json, size_t vars_len, cJSON **out,
                       ds8b__err *e) {
    *out = NULL;
    cJSON *x = cJSON_CreateObject();
    if (!x) return ds8b__seterr(e, DS8B_E_NOMEM, "template variables");
    cJSON *tools = NULL;
    if (tools_json) {
        tools = cJSON_ParseWithLength(tools_json, tools_len);
        if (!tools || !(cJSON_IsArray(tools) || cJSON_IsNull(tools))) {
            cJSON_Delete(tools);
            cJSON_Delete(x);
            return ds8b__seterr(e, DS8B_E_INVALID, "tools must be a JSON array of tool definitions (or null)");
        }
    } else {
        tools = cJSON_CreateNull();
    }
    if (!tools) { cJSON_Delete(x); return ds8b__seterr(e, DS8B_E_NOMEM, "template variables"); }
    cJSON_AddItemToObject(x, "tools", tools);
    if (vars_json) {
        cJSON *v = cJSON_ParseWithLength(vars_json, vars_len);
        if (!v || !cJSON_IsObject(v)) {
            cJSON_Delete(v);
            cJSON_Delete(x);
            return ds8b__seterr(e, DS8B_E_INVALID, "vars must be a JSON object of template variables");
        }
        const char *r = reserved_var(v);
        if (r) {
            ds8b__seterr(e, DS8B_E_INVALID, "vars may not set \"%s\" (the renderer sets it)", r);
            cJSON_Delete(v);
            cJSON_Delete(x);
            return e->code;
        }
        while (v->child) {
            cJSON *it = cJSON_DetachItemViaPointer(v, v->child);
            const char *k = it->string ? it->string : "";
            cJSON_DeleteItemFromObjectCaseSensitive(x, k); /* the last of duplicate keys wins, as in json.loads */
            cJSON_AddItemToObject(x, k, it);
        }
        cJSON_Delete(v);
    }
    *out = x;
    return DS8B_OK;
}

/* Shared by the model and tokenizer entry points. */
static int render_public(const char *model_tmpl, const ds8b_tokenizer *tok, const char *messages_json, size_t json_len,
                         const char *tools_json, size_t tools_len, const char *vars_json, size_t vars_len, bool with_extra,
                         int add_generation_prompt, char *buf, size_t cap, size_t *len, ds8b__err *e) {
    if (!messages_json || !len) return ds8b__seterr(e, DS8B_E_INVALID, "messages_json and len are required");
    cJSON *extra = NULL;
    if (with_extra) {
        int rx = build_extra(tools_json, tools_len, vars_json, vars_len, &extra, e);
        if (rx) return rx;
    }
    cJSON *msgs = cJSON_ParseWithLength(messages_json, json_len);
    int rc;
    if (!msgs || !cJSON_IsArray(msgs)) {
        rc = ds8b__seterr(e, DS8B_E_INVALID, "messages must be a JSON array of {\"role\", \"content\"} objects");
    } else {
        char *out = NULL;
        size_t n = 0;
        rc = render_with(model_tmpl, tok, msgs, extra, add_generation_prompt != 0, &out, &n, e);
        if (!rc) {
            *len = n;
            if (!buf || cap < n + 1) rc = ds8b__seterr(e, DS8B_E_BUFFER, "the rendered prompt needs %zu bytes plus a NUL", n);
            else {
                memcpy(buf, out, n);
                buf[n] = 0;
            }
        }
        ds8b__free(out);
    }
    cJSON_Delete(msgs);
    cJSON_Delete(extra);
    return rc;
}

DS8B_API int ds8b_chat_render(const ds8b_model *m, const char *messages_json, size_t json_len, int add_generation_prompt,
                              char *buf, size_t cap, size_t *len) {
    ds8b__err e = {0};
    int rc;
    if (!m || m->magic != DS8B_MODEL_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_chat_render: invalid model handle");
    else rc = render_public(m->chat_template, m->tok ? m->tok->tok : NULL, messages_json, json_len, NULL, 0, NULL, 0, false,
                            add_generation_prompt, buf, cap, len, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_tokenizer_chat_render(const ds8b_tokenizer *tok, const char *messages_json, size_t json_len,
                                        int add_generation_prompt, char *buf, size_t cap, size_t *len) {
    ds8b__err e = {0};
    int rc;
    if (!tok) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_tokenizer_chat_render: invalid tokenizer handle");
    else rc = render_public(NULL, tok, messages_json, json_len, NULL, 0, NULL, 0, false, add_generation_prompt, buf, cap,
                           len, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_chat_render_tools(const ds8b_model *m, const char *messages_json, size_t messages_len,
                                    const char *tools_json, size_t tools_len, const char *vars_json, size_t vars_len,
                                    int add_generation_prompt, char *buf, size_t cap, size_t *len) {
    ds8b__err e = {0};
    int rc;
    if (!m || m->magic != DS8B_MODEL_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_chat_render_tools: invalid model handle");
    else rc = render_public(m->chat_template, m->tok ? m->tok->tok : NULL, messages_json, messages_len, tools_json,
                            tools_len, vars_json, vars_len, true, add_generation_prompt, buf, cap, len, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_tokenizer_chat_render_tools(const ds8b_tokenizer *tok, const char *messages_json, size_t messages_len,
                                              const char *tools_json, size_t tools_len, const char *vars_json,
                                              size_t vars_len, int add_generation_prompt, char *buf, size_t cap,
                                              size_t *len) {
    ds8b__err e = {0};
    int rc;
    if (!tok) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_tokenizer_chat_render_tools: invalid tokenizer handle");
    else rc = render_public(NULL, tok, messages_json, messages_len, tools_json, tools_len, vars_json, vars_len, true,
                            add_generation_prompt, buf, cap, len, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Conversations                                                       */
/* ------------------------------------------------------------------ */
static bool chat_ok(const ds8b_chat *c) { return c && c->magic == DS8B_CHAT_MAGIC; }

static int cfail(ds8b_chat *c, ds8b__err *e) {
    if (c) c->err = *e;
    ds8b__set_last_error(e);
    return e->code;
}

/* Refuses (true) calls that change the conversation from inside the
 * stream callback of its own ds8b_chat_reply. */
static bool chat_busy(ds8b_chat *c, const char *fn) {
    if (!c->in_reply) return false;
    ds8b__err e = {0};
    ds8b__seterr(&e, DS8B_E_MISUSE, "%s: called from inside this chat's reply callback", fn);
    cfail(c, &e);
    return true;
}

DS8B_API int ds8b_chat_create(ds8b_session *s, ds8b_chat **out) {
    ds8b__err e = {0};
    if (!out || !s || s->magic != DS8B_SESSION_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_chat_create: invalid session handle or out");
        return cfail(NULL, &e);
    }
    *out = NULL;
    ds8b_chat *c = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *c, "the chat handle", &e);
    if (!c) return cfail(NULL, &e);
    memset(c, 0, sizeof *c);
    c->magic = DS8B_CHAT_MAGIC;
    c->s = s;
    atomic_fetch_add(&s->n_chats, 1);
    c->messages = cJSON_CreateArray();
    if (!c->messages) {
        atomic_fetch_sub(&s->n_chats, 1);
        ds8b__free(c);
        ds8b__seterr(&e, DS8B_E_NOMEM, "chat messages");
        return cfail(NULL, &e);
    }
    *out = c;
    return DS8B_OK;
}

DS8B_API void ds8b_chat_free(ds8b_chat *c) {
    if (!chat_ok(c)) return;
    if (c->in_reply) { /* from its own reply callback: ds8b_chat_reply frees it on return */
        c->free_deferred = true;
        return;
    }
    if (c->s && c->s->magic == DS8B_SESSION_MAGIC) atomic_fetch_sub(&c->s->n_chats, 1);
    cJSON_Delete(c->messages);
    cJSON_Delete(c->tools);
    cJSON_Delete(c->vars);
    cJSON_Delete(c->last_calls);
    ds8b__free(c->last_reply);
    ds8b__free(c->last_reasoning);
    c->magic = 0;
    ds8b__free(c);
}

DS8B_API const char *ds8b_chat_errmsg(const ds8b_chat *c) { return chat_ok(c) ? c->err.msg : "invalid chat handle"; }

DS8B_API int ds8b_chat_add(ds8b_chat *c, const char *role, const char *content) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_add")) return DS8B_E_MISUSE;
    if (!role || !content || !*role) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_add: role and content are required"); return cfail(c, &e); }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "role", role) || !cJSON_AddStringToObject(o, "content", content)) {
        cJSON_Delete(o);
        ds8b__seterr(&e, DS8B_E_NOMEM, "chat message");
        return cfail(c, &e);
    }
    cJSON_AddItemToArray(c->messages, o);
    return DS8B_OK;
}

DS8B_API int64_t ds8b_chat_n_messages(const ds8b_chat *c) { return chat_ok(c) ? cJSON_GetArraySize(c->messages) : -1; }

DS8B_API int ds8b_chat_message(const ds8b_chat *c, int64_t i, const char **role, const char **content) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); ds8b__set_last_error(&e); return e.code; }
    int64_t n = cJSON_GetArraySize(c->messages);
    if (i < 0 || i >= n) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_message: index %lld outside 0..%lld", (long long)i, (long long)n - 1);
        ds8b__set_last_error(&e);
        return e.code;
    }
    const cJSON *m = cJSON_GetArrayItem(c->messages, (int)i);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role"), *t = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (role) *role = cJSON_IsString(r) ? r->valuestring : "";
    if (content) *content = cJSON_IsString(t) ? t->valuestring : "";
    return DS8B_OK;
}

DS8B_API int ds8b_chat_pop(ds8b_chat *c) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); ds8b__set_last_error(&e); return e.code; }
    if (chat_busy(c, "ds8b_chat_pop")) return DS8B_E_MISUSE;
    int n = cJSON_GetArraySize(c->messages);
    if (n == 0) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_pop: the conversation is empty");
        c->err = e;
        ds8b__set_last_error(&e);
        return e.code;
    }
    cJSON_DeleteItemFromArray(c->messages, n - 1);
    return DS8B_OK;
}

DS8B_API int ds8b_chat_clear(ds8b_chat *c) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_clear")) return DS8B_E_MISUSE;
    cJSON *fresh = cJSON_CreateArray();
    if (!fresh) { ds8b__seterr(&e, DS8B_E_NOMEM, "ds8b_chat_clear: an empty message list"); return cfail(c, &e); }
    cJSON_Delete(c->messages); /* replaced only once the new list exists: never left without one */
    c->messages = fresh;
    return DS8B_OK;
}

typedef struct reply_acc {
    ds8b_stream_fn cb;
    void *user;
    char *ans, *rea, *tool;
    size_t nans, nrea, ntool, cans, crea, ctool;
    bool oom;
} reply_acc;

static void acc_put(reply_acc *a, char **buf, size_t *n, size_t *cap, const char *p, size_t len) {
    if (a->oom) return;
    if (len > SIZE_MAX / 4 - *n) { a->oom = true; return; }
    if (*n + len + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        while (nc < *n + len + 1) nc *= 2;
        char *q = ds8b__realloc(DS8B_MEM_SESSION, *buf, nc);
        if (!q) { a->oom = true; return; }
        *buf = q;
        *cap = nc;
    }
    memcpy(*buf + *n, p, len);
    *n += len;
    (*buf)[*n] = 0;
}

static int acc_cb(void *user, const char *piece, size_t len, int channel) {
    reply_acc *a = user;
    if (channel == DS8B_CHANNEL_REASONING) acc_put(a, &a->rea, &a->nrea, &a->crea, piece, len);
    else if (channel == DS8B_CHANNEL_TOOL_CALL) acc_put(a, &a->tool, &a->ntool, &a->ctool, piece, len);
    else acc_put(a, &a->ans, &a->nans, &a->cans, piece, len);
    return a->cb ? a->cb(a->user, piece, len, channel) : 0;
}

static size_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while ((int64_t)i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* ------------------------------------------------------------------ */
/* Tools and structured messages                                       */
/* ------------------------------------------------------------------ */
/* The template's tool-call family, when the chat has tools. */
static int chat_family(const ds8b_chat *c) {
    if (!c->tools) return DS8B__TC_NONE;
    const ds8b_model *m = c->s->model;
    return ds8b__tc_family(template_src(m->chat_template, m->tok ? m->tok->tok : NULL));
}

/* The extra template globals of the chat: NULL when it has neither tools
 * nor variables (then renders are those of ds8b_chat_render). */
static int chat_extra(const ds8b_chat *c, cJSON **out, ds8b__err *e) {
    *out = NULL;
    if (!c->tools && !c->vars) return DS8B_OK;
    cJSON *x = c->vars ? cJSON_Duplicate(c->vars, 1) : cJSON_CreateObject();
    cJSON *t = c->tools ? cJSON_Duplicate(c->tools, 1) : cJSON_CreateNull();
    if (!x || !t) {
        cJSON_Delete(x);
        cJSON_Delete(t);
        return ds8b__seterr(e, DS8B_E_NOMEM, "template variables");
    }
    cJSON_AddItemToObject(x, "tools", t);
    *out = x;
    return DS8B_OK;
}

static int parse_json(const char *json, size_t len, cJSON **out, const char *what, ds8b__err *e) {
    *out = NULL;
    if (!json) return ds8b__seterr(e, DS8B_E_INVALID, "%s: no JSON text", what);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return ds8b__seterr(e, DS8B_E_INVALID, "%s: not valid JSON", what);
    *out = j;
    return DS8B_OK;
}

DS8B_API int ds8b_chat_set_tools(ds8b_chat *c, const char *tools_json, size_t len) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_set_tools")) return DS8B_E_MISUSE;
    cJSON *j = NULL;
    if (tools_json) {
        if (parse_json(tools_json, len, &j, "ds8b_chat_set_tools", &e)) return cfail(c, &e);
        if (cJSON_IsNull(j)) {
            cJSON_Delete(j);
            j = NULL;
        } else if (!cJSON_IsArray(j)) {
            cJSON_Delete(j);
            ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_set_tools: tools must be a JSON array of tool definitions");
            return cfail(c, &e);
        }
    }
    cJSON_Delete(c->tools);
    c->tools = j;
    return DS8B_OK;
}

DS8B_API int ds8b_chat_set_vars(ds8b_chat *c, const char *vars_json, size_t len) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_set_vars")) return DS8B_E_MISUSE;
    cJSON *j = NULL;
    if (vars_json) {
        if (parse_json(vars_json, len, &j, "ds8b_chat_set_vars", &e)) return cfail(c, &e);
        const char *r = cJSON_IsObject(j) ? reserved_var(j) : NULL;
        if (!cJSON_IsObject(j) || r) {
            cJSON_Delete(j);
            if (r) ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_set_vars: vars may not set \"%s\" (the renderer sets it)", r);
            else ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_set_vars: vars must be a JSON object");
            return cfail(c, &e);
        }
    }
    cJSON_Delete(c->vars);
    c->vars = j;
    return DS8B_OK;
}

DS8B_API int ds8b_chat_add_json(ds8b_chat *c, const char *message_json, size_t len) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_add_json")) return DS8B_E_MISUSE;
    cJSON *j = NULL;
    if (parse_json(message_json, len, &j, "ds8b_chat_add_json", &e)) return cfail(c, &e);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "role");
    if (!cJSON_IsObject(j) || !cJSON_IsString(r) || !r->valuestring[0]) {
        cJSON_Delete(j);
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_add_json: a message is a JSON object with a \"role\" string");
        return cfail(c, &e);
    }
    cJSON_AddItemToArray(c->messages, j);
    return DS8B_OK;
}

DS8B_API int ds8b_chat_add_tool_result(ds8b_chat *c, const char *name, const char *content) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_add_tool_result")) return DS8B_E_MISUSE;
    if (!content) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_add_tool_result: content is required"); return cfail(c, &e); }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "role", "tool") || (name && !cJSON_AddStringToObject(o, "name", name)) ||
        !cJSON_AddStringToObject(o, "content", content)) {
        cJSON_Delete(o);
        ds8b__seterr(&e, DS8B_E_NOMEM, "chat message");
        return cfail(c, &e);
    }
    cJSON_AddItemToArray(c->messages, o);
    return DS8B_OK;
}

DS8B_API int ds8b_chat_messages_json(const ds8b_chat *c, char *buf, size_t cap, size_t *len) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); ds8b__set_last_error(&e); return e.code; }
    if (!len) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_messages_json: len is required"); ds8b__set_last_error(&e); return e.code; }
    char *t = cJSON_PrintUnformatted(c->messages);
    if (!t) { ds8b__seterr(&e, DS8B_E_NOMEM, "ds8b_chat_messages_json"); ds8b__set_last_error(&e); return e.code; }
    size_t n = strlen(t);
    *len = n;
    int rc = DS8B_OK;
    if (!buf || cap < n + 1) {
        rc = ds8b__seterr(&e, DS8B_E_BUFFER, "the messages need %zu bytes plus a NUL", n);
        ds8b__set_last_error(&e);
    } else {
        memcpy(buf, t, n + 1);
    }
    cJSON_free(t);
    return rc;
}

DS8B_API int64_t ds8b_chat_n_tool_calls(const ds8b_chat *c) {
    if (!chat_ok(c)) return -1;
    return c->last_calls ? cJSON_GetArraySize(c->last_calls) : 0;
}

DS8B_API int ds8b_chat_tool_call(const ds8b_chat *c, int64_t i, const char **name, const char **arguments_json) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); ds8b__set_last_error(&e); return e.code; }
    int64_t n = c->last_calls ? cJSON_GetArraySize(c->last_calls) : 0;
    if (i < 0 || i >= n) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_tool_call: index %lld outside the %lld calls of the last reply",
                     (long long)i, (long long)n);
        ds8b__set_last_error(&e);
        return e.code;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c->last_calls, (int)i), "function");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name"), *ar = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    if (name) *name = cJSON_IsString(nm) ? nm->valuestring : "";
    if (arguments_json) *arguments_json = cJSON_IsString(ar) ? ar->valuestring : "{}";
    return DS8B_OK;
}

/* Turns what a reply streamed into the chat's last reply and the assistant
 * message: tool calls parsed by the template family; the raw text of a
 * malformed call joins the answer. With calls, Qwen-style messages keep the
 * answer as content (trailing whitespace dropped: the template puts a line
 * break before each call); DeepSeek's templates render calls only when
 * content is null, so the answer then lives only in last_reply. */
static int take_reply(ds8b_chat *c, reply_acc *a, bool append, ds8b__err *e) {
    int family = chat_family(c);
    cJSON *calls = cJSON_CreateArray();
    char *bad = NULL;
    size_t nbad = 0;
    int rc = calls ? DS8B_OK : ds8b__seterr(e, DS8B_E_NOMEM, "tool calls");
    if (!rc && a->ntool) rc = ds8b__tc_parse(family, a->tool, a->ntool, calls, &bad, &nbad, e);
    if (!rc && nbad) {
        acc_put(a, &a->ans, &a->nans, &a->cans, bad, nbad);
        if (a->oom) rc = ds8b__seterr(e, DS8B_E_NOMEM, "chat reply text");
    }
    ds8b__free(bad);
    ds8b__free(a->tool);
    a->tool = NULL;
    ds8b__free(c->last_reply);
    ds8b__free(c->last_reasoning);
    cJSON_Delete(c->last_calls);
    c->last_reply = a->ans;
    c->last_reasoning = a->rea;
    c->last_calls = NULL;
    a->ans = a->rea = NULL;
    if (rc) { cJSON_Delete(calls); return rc; }
    c->last_calls = calls;
    if (!append) return DS8B_OK;
    const char *ans = c->last_reply ? c->last_reply : "";
    int ncalls = cJSON_GetArraySize(calls);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "role", "assistant");
    if (ok && ncalls && family == DS8B__TC_DEEPSEEK) ok = cJSON_AddNullToObject(o, "content") != NULL;
    else if (ok && ncalls) {
        size_t n = strlen(ans);
        while (n && (ans[n - 1] == '\n' || ans[n - 1] == ' ' || ans[n - 1] == '\r' || ans[n - 1] == '\t')) n--;
        cJSON *str = cJSON_CreateString("");
        char *t = str ? ds8b__malloc(DS8B_MEM_SESSION, n + 1) : NULL;
        ok = t != NULL;
        if (ok) {
            memcpy(t, ans, n);
            t[n] = 0;
            ok = cJSON_SetValuestring(str, t) != NULL;
        }
        ds8b__free(t);
        if (ok) cJSON_AddItemToObject(o, "content", str);
        else cJSON_Delete(str);
    } else if (ok) ok = cJSON_AddStringToObject(o, "content", ans) != NULL;
    /* with tools, the reasoning stays with the message: templates that show
     * it in a tool-calling chain (Qwen3) render what the model wrote */
    if (ok && c->tools && c->last_reasoning && c->last_reasoning[0])
        ok = cJSON_AddStringToObject(o, "reasoning_content", c->last_reasoning) != NULL;
    if (ok && ncalls) {
        cJSON *dup = cJSON_Duplicate(calls, 1);
        ok = dup != NULL;
        if (ok) cJSON_AddItemToObject(o, "tool_calls", dup);
    }
    if (!ok) {
        cJSON_Delete(o);
        return ds8b__seterr(e, DS8B_E_NOMEM, "chat message");
    }
    cJSON_AddItemToArray(c->messages, o);
    return DS8B_OK;
}

/* Renders the conversation with the generation prompt, reuses the cached
 * prefix, generates the assistant's reply with the reasoning channel, and
 * appends the answer to the conversation. */
static int chat_reply(ds8b_chat *c, ds8b_stream_fn cb, void *user, int64_t *n_generated);

DS8B_API int ds8b_chat_reply(ds8b_chat *c, ds8b_stream_fn cb, void *user, int64_t *n_generated) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_reply")) return DS8B_E_MISUSE;
    ds8b_session *s = c->s;
    if (!s || s->magic != DS8B_SESSION_MAGIC) { ds8b__seterr(&e, DS8B_E_MISUSE, "the chat's session was freed"); return cfail(c, &e); }
    if (ds8b__sess_busy(s, "ds8b_chat_reply", &e)) return cfail(c, &e);
    c->in_reply = true;
    s->in_gen = true;
    int rc = chat_reply(c, cb, user, n_generated);
    c->in_reply = false;
    s->in_gen = false;
    /* frees requested by the callback: the chat first, its memory is
     * counted in the session */
    if (c->free_deferred) {
        c->free_deferred = false;
        ds8b_chat_free(c);
    }
    if (s->free_deferred) {
        s->free_deferred = false;
        ds8b_session_free(s);
    }
    return rc;
}

static int tool_flags(const ds8b_chat *c) {
    int f = chat_family(c);
    return f == DS8B__TC_QWEN ? DS8B__GEN_TOOLS_QWEN : f == DS8B__TC_DEEPSEEK ? DS8B__GEN_TOOLS_DEEPSEEK : 0;
}

static int chat_reply(ds8b_chat *c, ds8b_stream_fn cb, void *user, int64_t *n_generated) {
    ds8b__err e = {0};
    ds8b_session *s = c->s;
    char *prompt = NULL;
    size_t plen = 0;
    cJSON *extra = NULL;
    int rc = chat_extra(c, &extra, &e);
    if (rc) { cJSON_Delete(extra); return cfail(c, &e); }
    /* Render and tokenize (the template carries BOS itself). Under
     * DS8B_CTX_SLIDE a conversation that no longer fits the context (with
     * room for a reply) is rendered without its oldest messages, a system
     * message first in the list always kept: the session's cache slides
     * the same way, and the conversation itself keeps every message. */
    int32_t *ids = NULL;
    size_t n = 0;
    int total = cJSON_GetArraySize(c->messages), skip = 0;
    bool sys = total > 0 && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c->messages, 0), "role")) &&
               !strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c->messages, 0), "role")->valuestring, "system");
    int64_t room = s->n_ctx - (s->max_tokens > 0 && s->max_tokens < s->n_ctx / 2 ? s->max_tokens : s->n_ctx / 2);
    for (;;) {
        const cJSON *msgs = c->messages;
        cJSON *win = NULL;
        if (skip > 0) {
            win = cJSON_CreateArray();
            if (!win) { rc = ds8b__seterr(&e, DS8B_E_NOMEM, "out of memory rendering the chat"); break; }
            int i = 0;
            for (cJSON *it = c->messages->child; it; it = it->next, i++)
                if ((sys && i == 0) || i >= skip + (sys ? 1 : 0)) cJSON_AddItemReferenceToArray(win, it);
            msgs = win;
        }
        rc = chat_render(s->model, msgs, extra, true, &prompt, &plen, &e);
        cJSON_Delete(win);
        if (rc) break;
        rc = ds8b__tok_encode(s->model->tok->tok, prompt, plen, 0, &ids, &n, &e);
        if (rc) break;
        int left = total - skip - (sys ? 1 : 0);
        if (s->ctx_policy != DS8B_CTX_SLIDE || (int64_t)n <= room || left <= 1) break;
        ds8b__free(ids);
        ds8b__free(prompt);
        ids = NULL;
        prompt = NULL;
        skip++;
    }
    cJSON_Delete(extra);
    if (rc) { ds8b__free(prompt); ds8b__free(ids); return cfail(c, &e); }
    size_t keep = common_prefix(s->tokens, s->n_past, ids, n);
    if (keep == n && keep > 0) keep--; /* re-evaluate one token to get fresh logits */
    s->n_past = (int64_t)keep;
    s->have_logits = false;
    /* evaluate the new suffix, then generate from an empty prompt */
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    rc = ds8b__session_eval(s, ids + keep, (int64_t)(n - keep), NULL, &e);
    ds8b__memscope_leave(old);
    ds8b__free(ids);
    if (rc) { ds8b__free(prompt); return cfail(c, &e); }
    reply_acc a = {0};
    a.cb = cb;
    a.user = user;
    /* the prompt's tail decides whether generation starts inside <think> */
    size_t tail = plen > 64 ? plen - 64 : 0;
    char *t = prompt + tail;
    bool think = strstr(t, "<think>") && !strstr(t, "</think>");
    rc = ds8b__generate(s, "", 0, DS8B_GEN_REASONING | (think ? DS8B_GEN_START_REASONING : 0) | tool_flags(c), acc_cb, &a,
                        n_generated, &e);
    if (rc) s->err = e;
    c->in_reply = false; /* no more callbacks: the reply may now be appended */
    ds8b__free(prompt);
    if (a.oom) { ds8b__seterr(&e, DS8B_E_NOMEM, "chat reply text"); rc = DS8B_E_NOMEM; }
    /* keep what was said, even when cancelled, so the conversation is consistent */
    int rc2 = take_reply(c, &a, rc == DS8B_OK || rc == DS8B_E_CANCELLED, &e);
    ds8b__free(a.ans);
    ds8b__free(a.rea);
    ds8b__free(a.tool);
    if (rc == DS8B_OK) rc = rc2;
    if (rc) {
        if (!e.code) { e.code = rc; snprintf(e.msg, sizeof e.msg, "%s", ds8b_errmsg()); }
        return cfail(c, &e);
    }
    return DS8B_OK;
}

DS8B_API int ds8b_chat_add_output(ds8b_chat *c, const char *text, size_t len, ds8b_stream_fn cb, void *user) {
    ds8b__err e = {0};
    if (!chat_ok(c)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid chat handle"); return cfail(NULL, &e); }
    if (chat_busy(c, "ds8b_chat_add_output")) return DS8B_E_MISUSE;
    if (!text && len) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_chat_add_output: text is NULL"); return cfail(c, &e); }
    ds8b_session *s = c->s;
    if (!s || s->magic != DS8B_SESSION_MAGIC) { ds8b__seterr(&e, DS8B_E_MISUSE, "the chat's session was freed"); return cfail(c, &e); }
    if (ds8b__sess_busy(s, "ds8b_chat_add_output", &e)) return cfail(c, &e);
    if (!text) text = "";
    /* the output starts inside reasoning when it closes </think> before opening one */
    bool think = false;
    for (size_t i = 0; i + 8 <= len; i++) {
        if (memcmp(text + i, "<think>", 7) == 0) break;
        if (memcmp(text + i, "</think>", 8) == 0) { think = true; break; }
    }
    reply_acc a = {0};
    a.cb = cb;
    a.user = user;
    c->in_reply = true;
    s->in_gen = true;
    int rc = ds8b__gen_feed(s, text, len, 0, DS8B_GEN_REASONING | (think ? DS8B_GEN_START_REASONING : 0) | tool_flags(c),
                            acc_cb, &a, &e);
    c->in_reply = false;
    s->in_gen = false;
    if (a.oom) { ds8b__seterr(&e, DS8B_E_NOMEM, "chat reply text"); rc = DS8B_E_NOMEM; }
    int rc2 = take_reply(c, &a, rc == DS8B_OK || rc == DS8B_E_CANCELLED, &e);
    ds8b__free(a.ans);
    ds8b__free(a.rea);
    ds8b__free(a.tool);
    if (rc == DS8B_OK) rc = rc2;
    bool freed_c = c->free_deferred, freed_s = s->free_deferred;
    c->free_deferred = s->free_deferred = false;
    if (rc) cfail(freed_c ? NULL : c, &e);
    if (freed_c) ds8b_chat_free(c);
    if (freed_s) ds8b_session_free(s);
    return rc;
}

DS8B_API const char *ds8b_chat_last_reply(const ds8b_chat *c) { return chat_ok(c) && c->last_reply ? c->last_reply : ""; }
DS8B_API const char *ds8b_chat_last_reasoning(const ds8b_chat *c) {
    return chat_ok(c) && c->last_reasoning ? c->last_reasoning : "";
}
