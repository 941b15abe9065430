/*
 * ds8b.h -- the one public header of libds8b.
 *
 * libds8b runs the DeepSeek 8B family (DeepSeek-R1-Distill-Llama-8B, Llama
 * architecture, and DeepSeek-R1-0528-Qwen3-8B, Qwen3 architecture) on a CPU.
 *
 * Conventions (see docs/api.md for the full reference):
 *  - Handles are opaque. Every constructor returns its handle through an
 *    out-parameter and has a destructor that accepts NULL.
 *  - Every fallible call returns an int: DS8B_OK (0) or a negative DS8B_E_*
 *    code. Codes are fixed forever; new ones are only appended.
 *  - The message for the last failure is kept per thread (ds8b_errmsg()) and,
 *    for sessions, per handle (ds8b_session_errmsg()).
 *  - Nothing is printed unless a log callback is installed, and no call aborts
 *    or exits the process on bad input.
 *  - No struct is passed by value. Parameters travel in an opaque
 *    ds8b_params bag set with pinned enum keys.
 *
 * Thread safety:
 *  - Global functions (version, errstr, memory queries and limits) are safe
 *    from any thread. ds8b_set_allocator() must be called before any other
 *    allocation-making call.
 *  - A ds8b_model is read-only after ds8b_model_load() returns: any number of
 *    threads may create sessions on it, tokenize and detokenize with it at
 *    once. ds8b_model_free() must not run concurrently with any other use of
 *    that model, and every session on it must be freed first.
 *  - A ds8b_session belongs to one thread at a time. The only session call
 *    that may be made from another thread is ds8b_session_cancel().
 *  - A ds8b_params bag is not synchronised; do not mutate it while another
 *    thread reads it. Calls copy what they need out of it.
 *  - A ds8b_tokenizer loaded on its own is read-only, like a model.
 */
#ifndef DS8B_H
#define DS8B_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define DS8B_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define DS8B_API __attribute__((visibility("default")))
#else
#  define DS8B_API
#endif

/* ------------------------------------------------------------------ */
/* Versions. The Makefile reads these three lines to set the SONAME.  */
/* ------------------------------------------------------------------ */
#define DS8B_VERSION_MAJOR 0
#define DS8B_VERSION_MINOR 1
#define DS8B_VERSION_PATCH 0
#define DS8B_VERSION_NUMBER \
    (DS8B_VERSION_MAJOR * 10000 + DS8B_VERSION_MINOR * 100 + DS8B_VERSION_PATCH)
#define DS8B_VERSION_STRING "0.1.0"

/* Runtime twins of the macros above. */
DS8B_API int ds8b_version_number(void);
DS8B_API const char *ds8b_version(void);

/* ------------------------------------------------------------------ */
/* Error codes. Values are fixed forever; new codes are appended.      */
/* ------------------------------------------------------------------ */
enum {
    DS8B_OK = 0,
    DS8B_E_INVALID = -1,       /* bad argument value */
    DS8B_E_MISUSE = -2,        /* NULL/freed/wrong handle, or call out of order */
    DS8B_E_NOMEM = -3,         /* allocation failed or hard limit reached */
    DS8B_E_IO = -4,            /* file could not be opened, read or written */
    DS8B_E_FORMAT = -5,        /* malformed or corrupt input file/data */
    DS8B_E_UNSUPPORTED = -6,   /* valid input this build cannot handle */
    DS8B_E_CONTEXT_FULL = -7,  /* session context length reached */
    DS8B_E_CANCELLED = -8,     /* a callback or ds8b_session_cancel() stopped it */
    DS8B_E_BUFFER = -9,        /* output buffer too small; size needed reported */
    DS8B_E_TEMPLATE = -10,     /* chat template error (syntax, raise_exception) */
    DS8B_E_LIMIT = -11,        /* a sandbox or size bound was exceeded */
    DS8B_E_CHECKSUM = -12,     /* CRC mismatch */
    DS8B_E_MISMATCH = -13,     /* data belongs to another model/version */
    DS8B_E_INTERNAL = -14,     /* a bug in libds8b; please report */
    DS8B_E_GRAMMAR = -15       /* GBNF grammar error (message: "line L, column C: ...") */
};

/* Static English text for a code; never NULL. */
DS8B_API const char *ds8b_errstr(int code);
/* Message of the last failed call made on this thread ("" when none). The
 * pointer stays valid until the next failing call on the same thread. */
DS8B_API const char *ds8b_errmsg(void);

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */
enum { DS8B_LOG_ERROR = 0, DS8B_LOG_WARN = 1, DS8B_LOG_INFO = 2, DS8B_LOG_DEBUG = 3 };
typedef void (*ds8b_log_fn)(void *user, int level, const char *message);

/* Progress of long work (loading, quantizing). fraction is in [0,1].
 * Return nonzero to cancel: the call then fails with DS8B_E_CANCELLED. */
typedef int (*ds8b_progress_fn)(void *user, double fraction, const char *stage);

/* ------------------------------------------------------------------ */
/* Parameter bags                                                      */
/* ------------------------------------------------------------------ */
typedef struct ds8b_params ds8b_params;

/* Keys. Values are pinned forever. "int" keys take ds8b_params_set_int,
 * "float" keys ds8b_params_set_float. ds8b_param_bounds() tells the range. */
typedef enum ds8b_param {
    /* session */
    DS8B_PARAM_N_CTX = 1,          /* int: context length in tokens (default 4096, clamped to the model's) */
    DS8B_PARAM_N_THREADS = 2,      /* int: worker threads, 0 = number of CPUs (default 0) */
    DS8B_PARAM_N_BATCH = 3,        /* int: prompt micro-batch size (default 0: auto, 512 on the amx kernel level, 64 elsewhere) */
    DS8B_PARAM_KV_TYPE = 4,        /* int: DS8B_KV_F32/F16/Q8_0 (default F16) */
    DS8B_PARAM_CTX_POLICY = 5,     /* int: DS8B_CTX_ERROR/STOP/SLIDE (default ERROR) */
    DS8B_PARAM_N_SINK = 6,         /* int: tokens kept at the start when sliding (default 4) */
    /* sampling */
    DS8B_PARAM_TEMPERATURE = 20,   /* float: 0 = greedy (default 0.8) */
    DS8B_PARAM_TOP_K = 21,         /* int: 0 = off (default 40) */
    DS8B_PARAM_TOP_P = 22,         /* float: 1 = off (default 0.95) */
    DS8B_PARAM_MIN_P = 23,         /* float: 0 = off (default 0.05) */
    DS8B_PARAM_REPEAT_PENALTY = 24,/* float: 1 = off (default 1.0) */
    DS8B_PARAM_REPEAT_LAST_N = 25, /* int: window for the penalty (default 64) */
    DS8B_PARAM_SEED = 26,          /* int: RNG seed (default 0x5eed) */
    DS8B_PARAM_MAX_TOKENS = 27,    /* int: generation limit, 0 = until EOS/context (default 256) */
    DS8B_PARAM_STOP_AT_EOS = 28,   /* int: 1 = stop at an end-of-generation token (default 1) */
    /* speculative decoding (settable on a live session) */
    DS8B_PARAM_SPEC = 30,          /* int: DS8B_SPEC_OFF/AUTO/ON (default AUTO): see ds8b_session_spec_stats */
    DS8B_PARAM_SPEC_MAX_DRAFT = 31,/* int: longest draft verified in one pass, 0..63; capped at
                                      DS8B_PARAM_N_BATCH - 1 (default 16) */
    DS8B_PARAM_SPEC_NGRAM = 32,    /* int: longest n-gram the lookup drafter matches, 2..16 (default 3) */
    /* loading */
    DS8B_PARAM_USE_MMAP = 40,      /* int: GGUF loads (default 1). 1: weights used as stored,
                                      mapped from the file and shared with other processes
                                      through the page cache. 0: the Q4_0/Q8_0 matrices are
                                      repacked into private heap copies (DS8B_MEM_WEIGHTS) in
                                      the layout of the decode kernels, the file's pages
                                      released as each is copied; decoding then uses the
                                      row-group kernels, whose results agree with the
                                      mapped model's to rounding. The repacking runs on
                                      DS8B_PARAM_N_THREADS threads of these params and
                                      reports progress. 8B q4_0, 2 threads, warm page
                                      cache (docs/performance.md): 1.6 s mapped, 5.3 s
                                      repacked; decode 4.6 vs 6.7 t/s. */
    DS8B_PARAM_VERIFY_CRC = 41     /* int: 1 = verify per-tensor CRC32 when present (default 1) */
} ds8b_param;

enum { DS8B_KV_F32 = 0, DS8B_KV_F16 = 1, DS8B_KV_Q8_0 = 2 };
enum { DS8B_CTX_ERROR = 0, DS8B_CTX_STOP = 1, DS8B_CTX_SLIDE = 2 };
enum { DS8B_SPEC_OFF = 0, DS8B_SPEC_AUTO = 1, DS8B_SPEC_ON = 2 };

DS8B_API int ds8b_params_create(ds8b_params **out);
DS8B_API void ds8b_params_free(ds8b_params *p);
DS8B_API int ds8b_params_set_int(ds8b_params *p, ds8b_param key, int64_t value);
DS8B_API int ds8b_params_set_float(ds8b_params *p, ds8b_param key, double value);
DS8B_API int ds8b_params_get_int(const ds8b_params *p, ds8b_param key, int64_t *value);
DS8B_API int ds8b_params_get_float(const ds8b_params *p, ds8b_param key, double *value);
/* Valid range of a key. Returns DS8B_E_INVALID for an unknown key. */
DS8B_API int ds8b_param_bounds(ds8b_param key, double *lo, double *hi);
/* Adds a stop string (copied). Generation stops before emitting it. */
DS8B_API int ds8b_params_add_stop(ds8b_params *p, const char *stop);
DS8B_API int ds8b_params_clear_stops(ds8b_params *p);
/* Log and progress callbacks used by calls that take these params. */
DS8B_API int ds8b_params_set_log(ds8b_params *p, ds8b_log_fn fn, void *user);
DS8B_API int ds8b_params_set_progress(ds8b_params *p, ds8b_progress_fn fn, void *user);

/* ------------------------------------------------------------------ */
/* Tokenizer                                                           */
/* ------------------------------------------------------------------ */
typedef struct ds8b_tokenizer ds8b_tokenizer;

/* Flags for ds8b_tokenize. */
enum {
    DS8B_TOKENIZE_ADD_SPECIAL = 1,     /* apply the post-processor (e.g. add BOS) */
    DS8B_TOKENIZE_NO_PARSE_SPECIAL = 2 /* treat special-token text as plain text */
};
/* Flags for ds8b_detokenize. */
enum { DS8B_DETOKENIZE_SKIP_SPECIAL = 1 };

/* Loads a tokenizer on its own: a tokenizer.json file, a directory holding
 * one (with an optional tokenizer_config.json), or a GGUF file. */
DS8B_API int ds8b_tokenizer_load(const char *path, ds8b_tokenizer **out);
DS8B_API void ds8b_tokenizer_free(ds8b_tokenizer *tok);

/* Encodes len bytes of UTF-8. Invalid UTF-8 sequences are replaced by
 * U+FFFD before encoding, exactly as a lossy decode would, and never fail.
 * Writes at most cap ids; *n_ids receives the full count. If cap is too
 * small, returns DS8B_E_BUFFER (call again with a bigger buffer). */
DS8B_API int ds8b_tokenize(const ds8b_tokenizer *tok, const char *text, size_t len,
                           int flags, int32_t *ids, size_t cap, size_t *n_ids);
/* Decodes ids to UTF-8 (invalid byte sequences become U+FFFD; ids outside
 * the vocabulary are skipped). Writes at most cap bytes plus a NUL if
 * room; *len receives the full length. */
DS8B_API int ds8b_detokenize(const ds8b_tokenizer *tok, const int32_t *ids, size_t n,
                             int flags, char *buf, size_t cap, size_t *len);
DS8B_API int32_t ds8b_tokenizer_vocab_size(const ds8b_tokenizer *tok);
/* Special ids, or -1 when the tokenizer has none. */
DS8B_API int32_t ds8b_tokenizer_bos(const ds8b_tokenizer *tok);
DS8B_API int32_t ds8b_tokenizer_eos(const ds8b_tokenizer *tok);
/* 1 if the id is a special/control token, else 0. */
DS8B_API int ds8b_tokenizer_is_special(const ds8b_tokenizer *tok, int32_t id);

/* ------------------------------------------------------------------ */
/* Models                                                              */
/* ------------------------------------------------------------------ */
typedef struct ds8b_model ds8b_model;

/* Loads a Hugging Face checkpoint directory (config.json, safetensors,
 * tokenizer.json) or a GGUF file. params may be NULL. */
DS8B_API int ds8b_model_load(const char *path, const ds8b_params *params, ds8b_model **out);
/* Frees m. Refused (nothing freed, message in ds8b_errmsg) while sessions
 * on m exist: free them first. */
DS8B_API void ds8b_model_free(ds8b_model *m);
/* The model's tokenizer, owned by the model. */
DS8B_API const ds8b_tokenizer *ds8b_model_tokenizer(const ds8b_model *m);

typedef enum ds8b_model_key {
    DS8B_MODEL_ARCH = 1,        /* DS8B_ARCH_* */
    DS8B_MODEL_N_VOCAB = 2,
    DS8B_MODEL_N_EMBD = 3,
    DS8B_MODEL_N_LAYER = 4,
    DS8B_MODEL_N_HEAD = 5,
    DS8B_MODEL_N_HEAD_KV = 6,
    DS8B_MODEL_HEAD_DIM = 7,
    DS8B_MODEL_N_FF = 8,
    DS8B_MODEL_N_CTX_TRAIN = 9,
    DS8B_MODEL_N_PARAMS = 10,
    DS8B_MODEL_N_TENSORS = 11,
    DS8B_MODEL_WEIGHT_BYTES = 12 /* bytes of weight data */
} ds8b_model_key;
enum { DS8B_ARCH_LLAMA = 1, DS8B_ARCH_QWEN3 = 2 };

DS8B_API int ds8b_model_info(const ds8b_model *m, ds8b_model_key key, int64_t *value);
/* Human-readable one-line description, e.g. "qwen3 6L 256d q4_0". */
DS8B_API const char *ds8b_model_desc(const ds8b_model *m);
/* Replace the log callback of a loaded model (NULL silences it). A model
 * keeps the callback given in its load params until replaced, so the
 * callback must stay valid. Not thread-safe with respect to concurrent use
 * of the model. */
DS8B_API int ds8b_model_set_log(ds8b_model *m, ds8b_log_fn fn, void *user);

/* ------------------------------------------------------------------ */
/* Quantization                                                        */
/* ------------------------------------------------------------------ */
/* Schemes: "f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0",
 * "q3_k_m", "q2_k", "w4a16". */

/* Quantizes a loaded float model into a new in-memory model. An importance
 * matrix set on params (ds8b_params_set_imatrix) weighs the quantization
 * error of each matrix by its columns' activations. */
DS8B_API int ds8b_model_quantize(const ds8b_model *src, const char *scheme,
                                 const ds8b_params *params, ds8b_model **out);
/* Converts a checkpoint directory or model file into a GGUF file at
 * out_path, streaming one tensor at a time. The file is written under a
 * temporary name and renamed into place only when complete. Uses the
 * importance matrix set on params, as ds8b_model_quantize does. */
DS8B_API int ds8b_quantize(const char *in_path, const char *out_path, const char *scheme,
                           const ds8b_params *params);

/* Importance matrices (llama.cpp's "imatrix"): for each matrix, the sum of
 * the squared activations of each input column over calibration text. */
typedef struct ds8b_imatrix ds8b_imatrix;
/* Reads an imatrix file of llama.cpp: its GGUF format (general.type
 * "imatrix") or the older .dat format. A malformed file gives
 * DS8B_E_FORMAT with a message naming what is wrong. */
DS8B_API int ds8b_imatrix_load(const char *path, ds8b_imatrix **out);
/* Computes one by running the float model m over len bytes of UTF-8 text,
 * in chunks of 512 tokens that each start with BOS. params (may be NULL):
 * DS8B_PARAM_N_THREADS, the progress callback (stage "calibrating"; a
 * nonzero return cancels with DS8B_E_CANCELLED). */
DS8B_API int ds8b_imatrix_compute(ds8b_model *m, const char *text, size_t len,
                                  const ds8b_params *params, ds8b_imatrix **out);
/* Writes it in llama.cpp's GGUF imatrix format (written under a temporary
 * name, renamed when complete). */
DS8B_API int ds8b_imatrix_save(const ds8b_imatrix *im, const char *path);
DS8B_API void ds8b_imatrix_free(ds8b_imatrix *im);
enum {
    DS8B_IMATRIX_ENTRIES = 1,   /* matrices it has statistics for */
    DS8B_IMATRIX_CHUNKS = 2,    /* chunks of text they were gathered over (0 if unknown) */
    DS8B_IMATRIX_CHUNK_SIZE = 3 /* tokens per chunk (0 if unknown) */
};
DS8B_API int ds8b_imatrix_info(const ds8b_imatrix *im, int key, int64_t *value);
/* Makes ds8b_quantize and ds8b_model_quantize with these params use im
 * (NULL: none). The params borrow it: keep im alive while they are used. */
DS8B_API int ds8b_params_set_imatrix(ds8b_params *p, const ds8b_imatrix *im);

/* ------------------------------------------------------------------ */
/* Sessions: KV cache, sampler, generation                             */
/* ------------------------------------------------------------------ */
typedef struct ds8b_session ds8b_session;

DS8B_API int ds8b_session_create(ds8b_model *m, const ds8b_params *params, ds8b_session **out);
/* Frees s. Refused (nothing freed, message in ds8b_errmsg) while chat
 * handles bound to s exist: free them first. */
DS8B_API void ds8b_session_free(ds8b_session *s);
DS8B_API const char *ds8b_session_errmsg(const ds8b_session *s);
/* Change a sampling or generation parameter (keys 20..39) on a live session. */
DS8B_API int ds8b_session_set_int(ds8b_session *s, ds8b_param key, int64_t value);
DS8B_API int ds8b_session_set_float(ds8b_session *s, ds8b_param key, double value);
DS8B_API int ds8b_session_add_stop(ds8b_session *s, const char *stop);

/* Number of tokens currently held in the context. */
DS8B_API int64_t ds8b_session_n_past(const ds8b_session *s);
/* Drops everything after the first n tokens. */
DS8B_API int ds8b_session_truncate(ds8b_session *s, int64_t n);
/* Drops all tokens and resets the sampler RNG to the seed. */
DS8B_API int ds8b_session_reset(ds8b_session *s);

/* Appends n tokens to the context and runs the model over them. If
 * logits is not NULL it receives n rows of n_vocab floats (one row per
 * input position); otherwise only the last row is kept, readable with
 * ds8b_session_logits(). */
DS8B_API int ds8b_eval(ds8b_session *s, const int32_t *ids, size_t n, float *logits);
/* Logits of the last evaluated position (n_vocab floats), or NULL. Valid
 * until the next call on the session. */
DS8B_API const float *ds8b_session_logits(const ds8b_session *s);
/* Samples a token from the current logits with the session's sampler. */
DS8B_API int ds8b_sample(ds8b_session *s, int32_t *token);

/* Channels reported by the streaming callback. */
enum { DS8B_CHANNEL_ANSWER = 0, DS8B_CHANNEL_REASONING = 1 };
/* Tool-call text of a chat reply (see ds8b_chat_set_tools, docs/tools.md):
 * the model's call markup and JSON, never passed on the answer channel. */
enum { DS8B_CHANNEL_TOOL_CALL = 2 };
/* Called with each piece of generated text. piece is complete UTF-8 (never
 * a split character), not NUL-terminated. Return 0 to continue, nonzero to
 * stop: generation then returns DS8B_E_CANCELLED.
 * Calling back into the library from the callback: reading state and
 * ds8b_session_cancel are fine; calls that would change the generating
 * session, its chat or the running ds8b_batch_step (eval, sample,
 * generate, truncate, reset, load, chat add/pop/clear/reply, batch add and
 * step) fail with DS8B_E_MISUSE; ds8b_session_free, ds8b_chat_free,
 * ds8b_batch_remove and ds8b_batch_free are carried out as soon as the
 * callback has returned, so a host may drop a character from inside its
 * own callback. */
typedef int (*ds8b_stream_fn)(void *user, const char *piece, size_t len, int channel);

/* Generation flags. */
enum {
    DS8B_GEN_ADD_SPECIAL = 1,   /* tokenize the prompt with special tokens (BOS) */
    DS8B_GEN_REASONING = 2,     /* split <think>...</think> into the reasoning channel;
                                   start inside reasoning if the prompt ends with <think> */
    DS8B_GEN_START_REASONING = 4 /* with DS8B_GEN_REASONING: start in the reasoning channel */
};
/* Tokenizes prompt, evaluates it after what the session already holds,
 * then samples until a stop condition: EOS, a stop string, MAX_TOKENS, or
 * the callback. An empty prompt continues from the current logits (after
 * ds8b_eval or an earlier generation). *n_generated (may be NULL) receives
 * the token count. Returns DS8B_OK when a normal stop condition ended it;
 * ds8b_session_finish_reason() tells which. */
DS8B_API int ds8b_generate(ds8b_session *s, const char *prompt, size_t len, int flags,
                           ds8b_stream_fn cb, void *user, int64_t *n_generated);
/* Asks the call running on s to stop at the next micro-batch (prompt) or
 * token (generation); it returns DS8B_E_CANCELLED. If no call is running,
 * the next eval/generate/chat call on s is the one cancelled. The request
 * is consumed by the call that returns DS8B_E_CANCELLED. Safe from any
 * thread and from a signal handler (it only performs an atomic store). */
DS8B_API int ds8b_session_cancel(ds8b_session *s);

/* Why the last ds8b_generate/ds8b_chat_reply on s ended. */
enum {
    DS8B_FINISH_NONE = 0,
    DS8B_FINISH_EOS = 1,          /* an end-of-generation token */
    DS8B_FINISH_MAX_TOKENS = 2,   /* DS8B_PARAM_MAX_TOKENS reached */
    DS8B_FINISH_STOP_STRING = 3,  /* a stop string matched */
    DS8B_FINISH_CONTEXT = 4,      /* context full under DS8B_CTX_STOP */
    DS8B_FINISH_CANCELLED = 5,    /* callback or ds8b_session_cancel */
    DS8B_FINISH_ERROR = 6,
    DS8B_FINISH_GRAMMAR = 7       /* the grammar is complete and nothing can follow */
};
DS8B_API int ds8b_session_finish_reason(const ds8b_session *s);
/* Removes every stop string of the session. */
DS8B_API int ds8b_session_clear_stops(ds8b_session *s);
/* Copies the tokens held in the context (prompt and generated). *n gets
 * the count; DS8B_E_BUFFER if ids is NULL or cap is too small. */
DS8B_API int ds8b_session_tokens(const ds8b_session *s, int32_t *ids, size_t cap, size_t *n);

/* ------------------------------------------------------------------ */
/* Batched generation: several sessions decoded together               */
/* ------------------------------------------------------------------ */
/* A batch advances the generations of several sessions of one model in
 * lockstep: each ds8b_batch_step samples one token for every member and
 * evaluates all of them in one forward pass, reading every weight matrix
 * once for the whole batch (the characters of a game, the buffers of an
 * editor). Each session keeps its own cache, sampler, stop conditions and
 * stream callback, and produces exactly the tokens it would produce with
 * ds8b_generate alone: results never depend on the other members. Members
 * can join and leave between steps. A batch and its member sessions are
 * used from one thread at a time; ds8b_session_cancel works from any
 * thread and ends that member's generation at the next step. */
typedef struct ds8b_batch ds8b_batch;
#define DS8B_BATCH_MAX 64 /* members of one batch */

/* params (may be NULL): DS8B_PARAM_N_THREADS, the batch's own threads for
 * the shared steps. */
DS8B_API int ds8b_batch_create(ds8b_model *m, const ds8b_params *params, ds8b_batch **out);
/* Frees b. Members still generating end with DS8B_FINISH_CANCELLED. */
DS8B_API void ds8b_batch_free(ds8b_batch *b);
DS8B_API const char *ds8b_batch_errmsg(const ds8b_batch *b);
/* Starts a generation on s as ds8b_generate would (same prompt and flags;
 * the prompt is evaluated now with s's own threads) and makes s a member.
 * s must belong to b's model and to no other batch. While s is a member,
 * calls that change it (eval, sample, generate, truncate, reset, load,
 * chat reply) fail with DS8B_E_MISUSE; freeing s takes it out of b.
 * DS8B_E_LIMIT past DS8B_BATCH_MAX members. On failure s is not added and
 * its finish reason says why. */
DS8B_API int ds8b_batch_add(ds8b_batch *b, ds8b_session *s, const char *prompt, size_t len, int flags,
                            ds8b_stream_fn cb, void *user);
/* Generates one token for every member (more for a member whose drafts
 * are accepted: see "Speculative decoding"): samples, streams its text
 * through the member's callback, then one shared forward pass. A member whose
 * generation ends (EOS, a stop string, MAX_TOKENS, a full context, its
 * callback, ds8b_session_cancel, or an error of its own) leaves the batch
 * with its ds8b_session_finish_reason set (DS8B_FINISH_NONE while it is
 * still a member) and, on an error, its message in ds8b_session_errmsg.
 * *n_active (may be NULL) receives the number of members left. Returns
 * DS8B_OK, or an error of the shared pass (e.g. DS8B_E_NOMEM), after which
 * the sampled tokens are kept and the next step evaluates them. */
DS8B_API int ds8b_batch_step(ds8b_batch *b, int64_t *n_active);
/* Takes s out of b; its generation ends with DS8B_FINISH_CANCELLED.
 * DS8B_E_INVALID if s is not a member. */
DS8B_API int ds8b_batch_remove(ds8b_batch *b, ds8b_session *s);
/* Members of b (-1 for an invalid handle). */
DS8B_API int64_t ds8b_batch_size(const ds8b_batch *b);
/* Tokens generated by s in its current or last generation (ds8b_generate,
 * chat reply or batch), -1 for an invalid handle. */
DS8B_API int64_t ds8b_session_n_generated(const ds8b_session *s);

/* ------------------------------------------------------------------ */
/* Speculative decoding                                                */
/* ------------------------------------------------------------------ */
/* ds8b_generate and ds8b_chat_reply may check several drafted tokens in
 * one forward pass (reading the weights once for all of them) instead of
 * evaluating one token per pass. The output is unchanged: greedy output is
 * token for token that of plain decoding, and sampled output is the same
 * for the same seed, because every position is sampled in order with the
 * RNG draw plain decoding would use and a draft is kept only where it
 * equals that sample. Rejected positions are rolled back: the cache,
 * logits, tokens, sampler state and ds8b_session_save bytes are those of
 * plain decoding. DS8B_PARAM_SPEC chooses: DS8B_SPEC_AUTO (default)
 * speculates when the measured acceptance and pass cost say it pays and
 * decodes plainly otherwise; DS8B_SPEC_ON always speculates when a draft
 * exists; DS8B_SPEC_OFF never. Drafts come from the host's text
 * (ds8b_session_set_draft), else a draft model
 * (ds8b_session_set_draft_model), else prompt lookup: the continuation of
 * the latest earlier occurrence of the last DS8B_PARAM_SPEC_NGRAM..2
 * tokens in the host text and the session's own tokens. Members of a
 * ds8b_batch speculate the same way, each with its own drafts and
 * rollback inside the batch's shared pass, and produce what they would
 * alone. */

/* The text the host expects right after the prompt of the next generation
 * on s (an editor's text after the cursor): it serves as the draft while
 * the output follows it, and as lookup text after. The next ds8b_generate
 * or ds8b_chat_reply consumes it (it is cleared when that generation
 * ends). text NULL with len 0 clears it. A wrong draft costs time, never
 * output. */
DS8B_API int ds8b_session_set_draft(ds8b_session *s, const char *text, size_t len);
/* A second, smaller model with the same vocabulary that drafts greedily
 * for s (NULL detaches). The library keeps a session of the draft model,
 * sized like s; draft must outlive that (detach it, or free s, before
 * ds8b_model_free(draft)). DS8B_E_MISMATCH if the vocabularies differ. */
DS8B_API int ds8b_session_set_draft_model(ds8b_session *s, ds8b_model *draft);
/* Totals since s was created: tokens drafted and verified, of them
 * accepted, and verification passes. Each may be NULL. Tokens per pass =
 * (accepted + passes) / passes. */
DS8B_API int ds8b_session_spec_stats(const ds8b_session *s, int64_t *drafted, int64_t *accepted,
                                     int64_t *passes);

/* ------------------------------------------------------------------ */
/* Chat: the model's own template, rendered by the library             */
/* ------------------------------------------------------------------ */
/* Renders messages (a JSON array of {"role": ..., "content": ...}) with
 * the model's chat template (tokenizer_config.json or GGUF metadata; the
 * DeepSeek-R1 format when the files carry none), exactly as transformers'
 * apply_chat_template does. Writes a NUL-terminated string; *len gets its
 * length; DS8B_E_BUFFER if cap < *len + 1. Templates run in a sandbox:
 * no I/O, bounded loops, recursion and output (DS8B_E_LIMIT);
 * raise_exception() and syntax errors give DS8B_E_TEMPLATE. */
DS8B_API int ds8b_chat_render(const ds8b_model *m, const char *messages_json, size_t json_len,
                              int add_generation_prompt, char *buf, size_t cap, size_t *len);
/* The same with a tokenizer's own template (tokenizer_config.json), for
 * tokenizer-only directories. */
DS8B_API int ds8b_tokenizer_chat_render(const ds8b_tokenizer *tok, const char *messages_json,
                                        size_t json_len, int add_generation_prompt, char *buf,
                                        size_t cap, size_t *len);
/* Renders messages with tool definitions and extra template variables, as
 * transformers' apply_chat_template(messages, tools=tools,
 * add_generation_prompt=..., **vars) does. Messages may carry "tool_calls"
 * ([{"type": "function", "function": {"name", "arguments"}}], arguments a
 * JSON string or an object), role "tool" results, "reasoning_content" and
 * content null. tools_json: NULL (the template sees tools = none) or a JSON
 * array of {"type": "function", "function": {"name", "description",
 * "parameters"}}. vars_json: NULL or a JSON object of variables, e.g.
 * {"enable_thinking": false}; it may not set messages, tools or
 * add_generation_prompt (DS8B_E_INVALID). Where the template itself fails
 * (a string plus null, raise_exception) the result is DS8B_E_TEMPLATE.
 * Output and errors as ds8b_chat_render. See docs/tools.md. */
DS8B_API int ds8b_chat_render_tools(const ds8b_model *m, const char *messages_json, size_t messages_len,
                                    const char *tools_json, size_t tools_len, const char *vars_json,
                                    size_t vars_len, int add_generation_prompt, char *buf, size_t cap,
                                    size_t *len);
/* The same with a tokenizer's own template. */
DS8B_API int ds8b_tokenizer_chat_render_tools(const ds8b_tokenizer *tok, const char *messages_json,
                                              size_t messages_len, const char *tools_json,
                                              size_t tools_len, const char *vars_json, size_t vars_len,
                                              int add_generation_prompt, char *buf, size_t cap,
                                              size_t *len);

/* A conversation bound to a session. Each reply re-renders the whole
 * conversation, keeps the KV cache of the prefix it shares with what the
 * session holds, and evaluates only the rest. */
typedef struct ds8b_chat ds8b_chat;
DS8B_API int ds8b_chat_create(ds8b_session *s, ds8b_chat **out);
DS8B_API void ds8b_chat_free(ds8b_chat *c);
DS8B_API const char *ds8b_chat_errmsg(const ds8b_chat *c);
/* Appends a message (role "system", "user" or "assistant"; copied). */
DS8B_API int ds8b_chat_add(ds8b_chat *c, const char *role, const char *content);
DS8B_API int64_t ds8b_chat_n_messages(const ds8b_chat *c);
/* Message i (0-based) of the conversation: *role and *content (either may
 * be NULL) point into the chat and stay valid until it changes (add,
 * clear, reply, pop, free). DS8B_E_INVALID for i out of range. */
DS8B_API int ds8b_chat_message(const ds8b_chat *c, int64_t i, const char **role, const char **content);
/* Removes the last message (undo a turn; with a reply, pop twice to drop
 * the exchange). The next reply reuses the cached prefix as usual. */
DS8B_API int ds8b_chat_pop(ds8b_chat *c);
DS8B_API int ds8b_chat_clear(ds8b_chat *c);
/* Generates the assistant's reply. cb receives complete UTF-8 pieces
 * tagged DS8B_CHANNEL_REASONING (inside <think>...</think>) or
 * DS8B_CHANNEL_ANSWER; tags are never passed on. The answer is appended to
 * the conversation (also when cancelled). With tools set
 * (ds8b_chat_set_tools), tool-call markup comes on DS8B_CHANNEL_TOOL_CALL. */
DS8B_API int ds8b_chat_reply(ds8b_chat *c, ds8b_stream_fn cb, void *user, int64_t *n_generated);
/* Answer and reasoning text of the last reply ("" if none); valid until
 * the next reply or free. */
DS8B_API const char *ds8b_chat_last_reply(const ds8b_chat *c);
DS8B_API const char *ds8b_chat_last_reasoning(const ds8b_chat *c);

/* Tools in a conversation (docs/tools.md). Sets the tool definitions that
 * every render of c passes to the template (a JSON array as in
 * ds8b_chat_render_tools; NULL or "null" removes them). With tools set,
 * replies are parsed for tool calls in the template's format: Qwen3's
 * <tool_call>{"name": ..., "arguments": {...}}</tool_call>, or DeepSeek's
 * <｜tool▁calls▁begin｜>...<｜tool▁sep｜>NAME + a fenced JSON block. Their
 * markup and JSON stream on DS8B_CHANNEL_TOOL_CALL, never on the answer
 * channel. Refused from inside the chat's own reply callback. */
DS8B_API int ds8b_chat_set_tools(ds8b_chat *c, const char *tools_json, size_t len);
/* Sets extra template variables for every render of c (a JSON object,
 * e.g. {"enable_thinking": false}; NULL removes them). They may not set
 * messages, tools or add_generation_prompt (DS8B_E_INVALID). */
DS8B_API int ds8b_chat_set_vars(ds8b_chat *c, const char *vars_json, size_t len);
/* Appends any message object (copied), e.g. {"role": "tool", "name": ...,
 * "content": ...} or an assistant message with "tool_calls"; it needs a
 * "role" string. The template decides what renders (see
 * ds8b_chat_render_tools). */
DS8B_API int ds8b_chat_add_json(ds8b_chat *c, const char *message_json, size_t len);
/* Appends {"role": "tool", "name": name, "content": content}; name may be
 * NULL (then left out). */
DS8B_API int ds8b_chat_add_tool_result(ds8b_chat *c, const char *name, const char *content);
/* Tool calls of the last reply (or ds8b_chat_add_output): their count (-1
 * for an invalid handle), and call i: *name and *arguments_json (the JSON
 * object as the model wrote it) point into the chat, valid until the next
 * reply, add_output or free. The reply's assistant message keeps its
 * "tool_calls" (arguments as JSON text), so the next render is what
 * apply_chat_template renders for it. A malformed call (no name, arguments
 * not a JSON object, never closed) is not returned as a call: its raw
 * text joins the answer (ds8b_chat_last_reply). */
DS8B_API int64_t ds8b_chat_n_tool_calls(const ds8b_chat *c);
DS8B_API int ds8b_chat_tool_call(const ds8b_chat *c, int64_t i, const char **name,
                                 const char **arguments_json);
/* Appends text as the assistant's reply, as if the model had generated it
 * after the conversation: it is split and streamed to cb (may be NULL)
 * into reasoning, answer and tool-call channels, and parsed for tool calls
 * exactly as ds8b_chat_reply's output. Nothing is evaluated. For scripted
 * turns and tests. */
DS8B_API int ds8b_chat_add_output(ds8b_chat *c, const char *text, size_t len, ds8b_stream_fn cb,
                                  void *user);
/* The conversation as a JSON array of message objects (what the template
 * renders), NUL-terminated; *len gets its length; DS8B_E_BUFFER if buf is
 * NULL or cap < *len + 1. */
DS8B_API int ds8b_chat_messages_json(const ds8b_chat *c, char *buf, size_t cap, size_t *len);

/* ------------------------------------------------------------------ */
/* Session state: save, restore, fork                                  */
/* ------------------------------------------------------------------ */
/* Serialises the session (tokens, KV cache, last logits, sampler state
 * including the RNG, parameters) into buf: a versioned, zlib-compressed
 * format with a model fingerprint and CRC-32s. *len receives the size; if
 * buf is NULL or cap too small, returns DS8B_E_BUFFER. Restoring into a
 * session of the same model continues bit-identically. */
DS8B_API int ds8b_session_save(ds8b_session *s, void *buf, size_t cap, size_t *len);
/* Same, to a file: written under PATH.tmp and renamed into place. */
DS8B_API int ds8b_session_save_file(ds8b_session *s, const char *path);
/* Restores a saved state into s, which must be on the same model with the
 * same KV type and a context at least as long as the saved tokens. Another
 * model gives DS8B_E_MISMATCH, a corrupt or truncated buffer
 * DS8B_E_FORMAT or DS8B_E_CHECKSUM, a newer format DS8B_E_UNSUPPORTED; s
 * is unchanged on any error. */
DS8B_API int ds8b_session_load(ds8b_session *s, const void *buf, size_t len);
DS8B_API int ds8b_session_load_file(ds8b_session *s, const char *path);
/* A new session on the same model holding a copy of s's state (for
 * branching dialogues). Free it with ds8b_session_free. */
DS8B_API int ds8b_session_fork(ds8b_session *s, ds8b_session **out);

/* ------------------------------------------------------------------ */
/* Grammars: GBNF-constrained generation (see docs/grammars.md)        */
/* ------------------------------------------------------------------ */
/* A compiled GBNF grammar (llama.cpp's format). Read-only once compiled:
 * any number of sessions and threads may use one grammar at once. */
typedef struct ds8b_grammar ds8b_grammar;

/* Compiles len bytes of GBNF. root names the start rule (NULL = "root").
 * Syntax errors, undefined rules, a missing root and left recursion give
 * DS8B_E_GRAMMAR with ds8b_errmsg() "line L, column C: message"; a grammar
 * past the size, nesting or repetition bounds gives DS8B_E_LIMIT. */
DS8B_API int ds8b_grammar_compile(const char *gbnf, size_t len, const char *root, ds8b_grammar **out);
/* Frees g. Refused (nothing freed, message in ds8b_errmsg) while sessions
 * still have g attached: detach it (ds8b_session_set_grammar(s, NULL)) or
 * free them first. NULL is a no-op. */
DS8B_API void ds8b_grammar_free(ds8b_grammar *g);
/* *accept = 1 when the whole text (len bytes of UTF-8) is a complete
 * sentence of g, else 0. DS8B_E_LIMIT when matching passes the matcher's
 * bounds (a highly ambiguous grammar). */
DS8B_API int ds8b_grammar_accepts(const ds8b_grammar *g, const char *text, size_t len, int *accept);
/* Constrains s's generations by g (NULL removes the grammar). Applies from
 * the next ds8b_generate / ds8b_chat_reply / ds8b_batch_add: each starts
 * g from its root, except a generation with an empty prompt, which
 * continues a grammar left incomplete by the previous one (MAX_TOKENS,
 * cancel). Tokens that cannot continue are masked before sampling; an
 * end-of-generation token only where g can end; when g is complete and
 * nothing can follow, generation ends with DS8B_FINISH_GRAMMAR. With
 * DS8B_GEN_REASONING the grammar constrains the answer only: it starts
 * after </think>. s keeps a reference: g must outlive the attachment. */
DS8B_API int ds8b_session_set_grammar(ds8b_session *s, const ds8b_grammar *g);

/* JSON Schema grammars (see docs/json-schema.md). Compiles a grammar whose
 * sentences are JSON texts valid under the schema (len bytes of JSON):
 * type (all, and arrays of types), properties, required,
 * additionalProperties, items, prefixItems, minItems/maxItems, enum,
 * const, anyOf/oneOf/allOf, local $ref (#/$defs/..., #/definitions/...,
 * recursive ones too), minLength/maxLength, pattern (a regex subset),
 * format (date, time, date-time, uuid), minimum/maximum and their
 * exclusive forms. "{}" or "true" give any JSON value. Whitespace between
 * tokens is bounded: nothing, one space, or one newline and up to 20
 * spaces or tabs. Errors: DS8B_E_FORMAT (not JSON), DS8B_E_UNSUPPORTED (a
 * keyword, format or regex feature not handled; ds8b_errmsg() names it
 * and its JSON-pointer path, e.g. "unsupported keyword 'not' at
 * /properties/a"), DS8B_E_INVALID (malformed, or a schema that matches
 * nothing), DS8B_E_LIMIT (nesting, size or $ref chain bounds). */
DS8B_API int ds8b_grammar_from_json_schema(const char *schema_json, size_t len, ds8b_grammar **out);
/* The grammar of any JSON value, with the same whitespace bound. */
DS8B_API int ds8b_grammar_any_json(ds8b_grammar **out);
/* The GBNF text the schema converts to (start rule "root"), to inspect
 * or edit and pass to ds8b_grammar_compile. Writes a NUL-terminated
 * string; *out_len gets its length; DS8B_E_BUFFER if buf is NULL or
 * cap < *out_len + 1. Errors as ds8b_grammar_from_json_schema. */
DS8B_API int ds8b_json_schema_to_gbnf(const char *schema_json, size_t len, char *buf, size_t cap,
                                      size_t *out_len);

/* ------------------------------------------------------------------ */
/* Memory accounting                                                   */
/* ------------------------------------------------------------------ */
enum {
    DS8B_MEM_WEIGHTS = 0,     /* heap copies of weights */
    DS8B_MEM_KV = 1,          /* KV caches */
    DS8B_MEM_SCRATCH = 2,     /* activations and scratch buffers */
    DS8B_MEM_TOKENIZER = 3,   /* vocab, merges, templates */
    DS8B_MEM_SESSION = 4,     /* session bookkeeping, samplers */
    DS8B_MEM_THREADS = 5,     /* thread pool */
    DS8B_MEM_OTHER = 6,       /* everything else (parsing, I/O buffers) */
    DS8B_MEM_MAPPED = 7,      /* weights memory-mapped from files (not heap) */
    DS8B_MEM__COUNT = 8
};
/* Current bytes in a category (or all heap categories when cat == -1). */
DS8B_API int64_t ds8b_memory_used(int cat);
/* Peak bytes since the last reset; reset != 0 resets it to the current. */
DS8B_API int64_t ds8b_memory_highwater(int cat, int reset);
/* SQLite-style limits on heap bytes: n < 0 queries, 0 disables, otherwise
 * sets. Returns the previous limit. Past the soft limit a warning is logged;
 * past the hard limit allocations fail with DS8B_E_NOMEM. */
DS8B_API int64_t ds8b_soft_heap_limit(int64_t n);
DS8B_API int64_t ds8b_hard_heap_limit(int64_t n);
/* Bytes obtained from the allocator, including the library's headers and
 * alignment: compare with ds8b_memory_used(-1) to see the overhead. */
DS8B_API int64_t ds8b_memory_reserved(void);
/* Current and peak bytes of one category (-1: all heap categories) owned
 * by a model (including its sessions) or by one session. */
DS8B_API int ds8b_model_memory(const ds8b_model *m, int cat, int64_t *current, int64_t *peak);
DS8B_API int ds8b_session_memory(const ds8b_session *s, int cat, int64_t *current, int64_t *peak);
/* Estimates, before loading, the bytes per category that loading path
 * (a checkpoint directory or GGUF file) and one session with a full
 * context need. scheme: NULL or "" for the weights as stored, else a
 * quantization scheme applied in memory (see ds8b_model_quantize).
 * session_params (may be NULL) gives N_CTX, N_BATCH, KV_TYPE, N_THREADS.
 * Fills bytes[0..n_categories) indexed by DS8B_MEM_*. Reads headers only
 * (and builds the tokenizer to measure it). */
DS8B_API int ds8b_estimate(const char *path, const char *scheme, const ds8b_params *session_params,
                           int64_t *bytes, size_t n_categories);
/* Replace the allocator. Must be called before any allocation is made (or
 * after everything has been freed). Any function may be NULL to restore the
 * default. Pointers returned must be 16-byte aligned. */
typedef void *(*ds8b_malloc_fn)(void *user, size_t n);
typedef void (*ds8b_free_fn)(void *user, void *p);
DS8B_API int ds8b_set_allocator(ds8b_malloc_fn m, ds8b_free_fn f, void *user);

#ifdef __cplusplus
}
#endif
#endif /* DS8B_H */
