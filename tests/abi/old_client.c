/* old_client.c -- a program written for libds8b 0.1.0: it includes only the
 * frozen tests/abi/ds8b_v0_1_0.h and uses the core API (version, errors,
 * params, model load, tokenizer, session, eval/sample, generate, save,
 * free). tests/test_abi.sh builds it against that header and runs it with
 * the newly built shared library, as an application built against the old
 * release would run after an upgrade.
 * Usage: old_client MODEL_DIR */
#include "ds8b_v0_1_0.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail;
#define EXPECT(name, cond)                                               \
    do {                                                                 \
        if (cond) printf("ok old_client_%s\n", name);                    \
        else { printf("not ok old_client_%s: %s\n", name, ds8b_errmsg()); g_fail = 1; } \
    } while (0)

static int collect(void *user, const char *piece, size_t len, int channel) {
    size_t *n = user;
    (void)piece;
    (void)channel;
    *n += len;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    /* the library is at least as new as the header, same major */
    int v = ds8b_version_number();
    EXPECT("version", v >= DS8B_VERSION_NUMBER && v / 10000 == DS8B_VERSION_MAJOR && ds8b_version() &&
                      strlen(ds8b_version()) >= 5);
    EXPECT("errstr", ds8b_errstr(DS8B_E_NOMEM) && *ds8b_errstr(DS8B_E_NOMEM) && ds8b_errstr(12345));

    ds8b_params *p = NULL;
    EXPECT("params", ds8b_params_create(&p) == DS8B_OK && p);
    if (!p) return 1;
    EXPECT("params_set", ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 128) == DS8B_OK &&
                         ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1) == DS8B_OK &&
                         ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 6) == DS8B_OK &&
                         ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0) == DS8B_OK &&
                         ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.0) == DS8B_OK);
    int64_t iv = 0;
    double lo = 0, hi = 0;
    EXPECT("params_get", ds8b_params_get_int(p, DS8B_PARAM_N_CTX, &iv) == DS8B_OK && iv == 128 &&
                         ds8b_param_bounds(DS8B_PARAM_TOP_P, &lo, &hi) == DS8B_OK && hi >= 1.0);
    EXPECT("params_bad_key", ds8b_params_set_int(p, (ds8b_param)9999, 1) == DS8B_E_INVALID);

    ds8b_model *m = NULL;
    EXPECT("load_missing", ds8b_model_load("/nonexistent/model", NULL, &m) != DS8B_OK);
    EXPECT("model_load", ds8b_model_load(argv[1], NULL, &m) == DS8B_OK && m);
    if (!m) { ds8b_params_free(p); return 1; }
    int64_t n_vocab = 0, n_layer = 0;
    EXPECT("model_info", ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &n_vocab) == DS8B_OK && n_vocab > 0 &&
                         ds8b_model_info(m, DS8B_MODEL_N_LAYER, &n_layer) == DS8B_OK && n_layer > 0 &&
                         ds8b_model_desc(m) != NULL);

    const ds8b_tokenizer *tok = ds8b_model_tokenizer(m);
    int32_t ids[64];
    size_t n = 0;
    char text[256];
    size_t tl = 0;
    const char *prompt = "The Python interpreter";
    EXPECT("tokenize", ds8b_tokenize(tok, prompt, strlen(prompt), DS8B_TOKENIZE_ADD_SPECIAL, ids, 64, &n) ==
                               DS8B_OK && n > 1 && ids[0] == ds8b_tokenizer_bos(tok));
    EXPECT("detokenize", ds8b_detokenize(tok, ids, n, DS8B_DETOKENIZE_SKIP_SPECIAL, text, sizeof text, &tl) ==
                                 DS8B_OK && strstr(text, "Python") != NULL);
    EXPECT("tokenize_small_buffer",
           ds8b_tokenize(tok, prompt, strlen(prompt), 0, ids, 1, &n) == DS8B_E_BUFFER && n > 1);

    ds8b_session *s = NULL;
    EXPECT("session_create", ds8b_session_create(m, p, &s) == DS8B_OK && s);
    if (s) {
        size_t bytes = 0;
        int64_t ng = 0;
        EXPECT("generate", ds8b_generate(s, prompt, strlen(prompt), DS8B_GEN_ADD_SPECIAL, collect, &bytes, &ng) ==
                                   DS8B_OK && ng == 6 && bytes > 0);
        int64_t past = ds8b_session_n_past(s);
        EXPECT("n_past", past > 6);
        size_t need = 0;
        EXPECT("save_size", ds8b_session_save(s, NULL, 0, &need) == DS8B_E_BUFFER && need > 48);
        void *buf = malloc(need);
        size_t got = 0;
        EXPECT("save_load", buf && ds8b_session_save(s, buf, need, &got) == DS8B_OK &&
                                    ds8b_session_reset(s) == DS8B_OK && ds8b_session_n_past(s) == 0 &&
                                    ds8b_session_load(s, buf, got) == DS8B_OK && ds8b_session_n_past(s) == past);
        free(buf);
        int32_t t = -1;
        EXPECT("eval_sample", ds8b_session_truncate(s, 3) == DS8B_OK && ds8b_eval(s, ids + 1, 2, NULL) == DS8B_OK &&
                                      ds8b_session_logits(s) != NULL && ds8b_sample(s, &t) == DS8B_OK && t >= 0 &&
                                      t < n_vocab);
        EXPECT("memory", ds8b_memory_used(-1) > 0);
    }
    ds8b_session_free(s);
    ds8b_model_free(m);
    ds8b_params_free(p);
    EXPECT("all_freed", ds8b_memory_used(-1) == 0);
    /* destructors accept NULL */
    ds8b_session_free(NULL);
    ds8b_model_free(NULL);
    ds8b_params_free(NULL);
    return g_fail;
}
