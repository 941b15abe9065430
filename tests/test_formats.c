/* test_formats.c -- config.json and safetensors readers.
 *
 * Expected values are read from the data files themselves with cJSON (an
 * independent path from the library's parser), never written down here.
 *
 *   test_formats                 run the tests
 *   test_formats --corpus DIR    also write fuzz seeds to DIR/{safetensors,config}
 */
#include "t.h"

#include "formats/safetensors.h"
#include "model/hparams.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256];

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    if (len) *len = got;
    return b;
}

static cJSON *read_json(const char *path) {
    char *s = slurp(path, NULL);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static int cfg_parse_json(const cJSON *j, ds8b__hparams *hp, ds8b__err *e) {
    char *s = cJSON_PrintUnformatted(j);
    int rc = ds8b__hf_config_parse(s, strlen(s), "test-config.json", hp, e);
    free(s);
    return rc;
}

static double jnum(const cJSON *o, const char *k, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* Compares every field of hp with the config JSON read independently. */
static void check_hp_vs_json(const char *what, const cJSON *j, const ds8b__hparams *hp) {
    const char *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type")->valuestring;
    CHECK(hp->arch == (strcmp(mt, "qwen3") == 0 ? DS8B_ARCH_QWEN3 : DS8B_ARCH_LLAMA), "%s arch", what);
    double heads = jnum(j, "num_attention_heads", -1);
    CHECK(hp->n_embd == (int64_t)jnum(j, "hidden_size", -1), "%s hidden", what);
    CHECK(hp->n_layer == (int64_t)jnum(j, "num_hidden_layers", -1), "%s layers", what);
    CHECK(hp->n_head == (int64_t)heads, "%s heads", what);
    CHECK(hp->n_head_kv == (int64_t)jnum(j, "num_key_value_heads", heads), "%s kv heads", what);
    CHECK(hp->head_dim == (int64_t)jnum(j, "head_dim", jnum(j, "hidden_size", 0) / heads), "%s head_dim %lld",
          what, (long long)hp->head_dim);
    CHECK(hp->n_ff == (int64_t)jnum(j, "intermediate_size", -1), "%s ff", what);
    CHECK(hp->n_vocab == (int64_t)jnum(j, "vocab_size", -1), "%s vocab", what);
    CHECK(hp->n_ctx_train == (int64_t)jnum(j, "max_position_embeddings", -1), "%s ctx", what);
    CHECK(hp->rms_eps == jnum(j, "rms_norm_eps", -1), "%s eps %g", what, hp->rms_eps);
    CHECK(hp->rope_theta == jnum(j, "rope_theta", 10000), "%s theta %g", what, hp->rope_theta);
    CHECK(hp->tie_embd == cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings")),
          "%s tie", what);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bos_token_id");
    CHECK(hp->bos == (cJSON_IsNumber(b) ? b->valueint : -1), "%s bos %d", what, hp->bos);
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (cJSON_IsNumber(eo)) CHECK(hp->n_eos == 1 && hp->eos[0] == eo->valueint, "%s eos", what);
    else if (cJSON_IsArray(eo)) {
        CHECK(hp->n_eos == cJSON_GetArraySize(eo), "%s n_eos", what);
        for (int i = 0; i < hp->n_eos; i++)
            CHECK(hp->eos[i] == cJSON_GetArrayItem(eo, i)->valueint, "%s eos[%d]", what, i);
    } else CHECK(hp->n_eos == 0, "%s no eos", what);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (!cJSON_IsObject(rs)) {
        CHECK(hp->rope_type == DS8B_ROPE_NONE, "%s rope none", what);
        return;
    }
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(ty)) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *t = ty->valuestring;
    if (strcmp(t, "llama3") == 0) {
        CHECK(hp->rope_type == DS8B_ROPE_LLAMA3, "%s llama3", what);
        CHECK(hp->rope_factor == jnum(rs, "factor", -1), "%s factor", what);
        CHECK(hp->rope_low_freq == jnum(rs, "low_freq_factor", 1), "%s low", what);
        CHECK(hp->rope_high_freq == jnum(rs, "high_freq_factor", 4), "%s high", what);
        CHECK(hp->rope_orig_ctx == jnum(rs, "original_max_position_embeddings", -1), "%s orig", what);
    } else if (strcmp(t, "yarn") == 0) {
        CHECK(hp->rope_type == DS8B_ROPE_YARN, "%s yarn", what);
        CHECK(hp->rope_factor == jnum(rs, "factor", -1), "%s factor", what);
        CHECK(hp->rope_orig_ctx == jnum(rs, "original_max_position_embeddings", jnum(j, "max_position_embeddings", 0)),
              "%s orig", what);
        CHECK(hp->yarn_beta_fast == jnum(rs, "beta_fast", 32), "%s beta_fast", what);
        CHECK(hp->yarn_beta_slow == jnum(rs, "beta_slow", 1), "%s beta_slow", what);
    } else {
        CHECK(0, "%s: unexpected rope type %s in test data", what, t);
    }
}

static void check_config_file(const char *path) {
    cJSON *j = read_json(path);
    CHECK(j != NULL, "%s readable", path);
    if (!j) return;
    size_t len;
    char *s = slurp(path, &len);
    ds8b__hparams hp;
    ds8b__err e = {0};
    int rc = ds8b__hf_config_parse(s, len, path, &hp, &e);
    CHECK(rc == 0, "%s: %s", path, e.msg);
    if (rc == 0) check_hp_vs_json(path, j, &hp);
    free(s);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------------ */
/* Configs                                                             */
/* ------------------------------------------------------------------ */
static void test_config_files(void) {
    char p[1024];
    check_config_file(t_path(p, sizeof p, "models/demo-llama/config.json"));
    check_config_file(t_path(p, sizeof p, "models/demo-qwen3/config.json"));
    int n = 0;
    DIR *d = opendir(t_path(p, sizeof p, "configs"));
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
        char q[1200];
        snprintf(q, sizeof q, "%s/%s", p, de->d_name);
        check_config_file(q);
        n++;
    }
    if (d) closedir(d);
    CHECK(n >= 2, "found %d real configs", n);
}

static void test_config_yarn(void) {
    char p[1024];
    cJSON *ref = read_json(t_path(p, sizeof p, "testdata/reference/demo-qwen3-yarn.json"));
    CHECK(ref != NULL, "yarn reference readable");
    if (!ref) return;
    const cJSON *shipped = cJSON_GetObjectItemCaseSensitive(ref, "config_shipped");
    const cJSON *computed = cJSON_GetObjectItemCaseSensitive(ref, "config_computed_with");
    double want = jnum(cJSON_GetObjectItemCaseSensitive(ref, "rope"), "attention_scaling", NAN);
    ds8b__hparams hp;
    ds8b__err e = {0};
    int rc = cfg_parse_json(shipped, &hp, &e);
    CHECK(rc == 0, "shipped: %s", e.msg);
    check_hp_vs_json("config_shipped", shipped, &hp);
    CHECK(fabs(hp.yarn_attn_scale - want) < 1e-9, "shipped attn scale %.17g want %.17g", hp.yarn_attn_scale,
          want);
    rc = cfg_parse_json(computed, &hp, &e);
    CHECK(rc == 0, "computed_with: %s", e.msg);
    check_hp_vs_json("config_computed_with", computed, &hp);
    CHECK(fabs(hp.yarn_attn_scale - want) < 1e-9, "computed attn scale %.17g", hp.yarn_attn_scale);

    /* No attention key: YaRN's own 0.1 ln(factor) + 1. */
    cJSON *c = cJSON_Duplicate(shipped, 1);
    cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    cJSON_DeleteItemFromObjectCaseSensitive(rs, "attn_factor");
    double factor = jnum(rs, "factor", 0);
    rc = cfg_parse_json(c, &hp, &e);
    CHECK(rc == 0, "no attn factor: %s", e.msg);
    CHECK(fabs(hp.yarn_attn_scale - (0.1 * log(factor) + 1)) < 1e-12, "bare yarn scale %.17g",
          hp.yarn_attn_scale);
    /* Real Qwen3 config: same rule. */
    cJSON *real = read_json(t_path(p, sizeof p, "configs/DeepSeek-R1-0528-Qwen3-8B.json"));
    if (!real) {
        /* The file name may differ: find the qwen3 one. */
        DIR *d = opendir(t_path(p, sizeof p, "configs"));
        struct dirent *de;
        while (d && (de = readdir(d)) && !real) {
            if (!strstr(de->d_name, ".json")) continue;
            char q[1200];
            snprintf(q, sizeof q, "%s/%s", p, de->d_name);
            cJSON *x = read_json(q);
            const cJSON *mt = cJSON_GetObjectItemCaseSensitive(x, "model_type");
            if (cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen3") == 0) real = x;
            else cJSON_Delete(x);
        }
        if (d) closedir(d);
    }
    CHECK(real != NULL, "real qwen3 config found");
    if (real) {
        rc = cfg_parse_json(real, &hp, &e);
        CHECK(rc == 0 && fabs(hp.yarn_attn_scale - 1.0) < 1e-9, "real qwen3 scale %.17g (%s)",
              hp.yarn_attn_scale, e.msg);
        cJSON_Delete(real);
    }
    cJSON_Delete(c);
    cJSON_Delete(ref);
}

/* A mutation of a base config and the words its error must contain. */
typedef struct cfg_case {
    const char *key;     /* dotted key to change ("rope_scaling.factor") */
    const char *value;   /* JSON value, or NULL to delete the key */
    int code;            /* expected error */
    const char *needle;  /* text the message must contain */
} cfg_case;

static void apply_case(cJSON *root, const cfg_case *k) {
    cJSON *obj = root;
    char key[128];
    snprintf(key, sizeof key, "%s", k->key);
    char *dot = strchr(key, '.');
    if (dot) {
        *dot = 0;
        obj = cJSON_GetObjectItemCaseSensitive(root, key);
        memmove(key, dot + 1, strlen(dot + 1) + 1);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (k->value) cJSON_AddItemToObject(obj, key, cJSON_Parse(k->value));
}

static void test_config_errors(void) {
    static const cfg_case cases[] = {
        {"hidden_size", NULL, DS8B_E_FORMAT, "hidden_size"},
        {"num_hidden_layers", NULL, DS8B_E_FORMAT, "num_hidden_layers"},
        {"num_attention_heads", NULL, DS8B_E_FORMAT, "num_attention_heads"},
        {"intermediate_size", NULL, DS8B_E_FORMAT, "intermediate_size"},
        {"vocab_size", NULL, DS8B_E_FORMAT, "vocab_size"},
        {"rms_norm_eps", NULL, DS8B_E_FORMAT, "rms_norm_eps"},
        {"max_position_embeddings", NULL, DS8B_E_FORMAT, "max_position_embeddings"},
        {"model_type", NULL, DS8B_E_FORMAT, "model_type"},
        {"model_type", "\"mistral\"", DS8B_E_UNSUPPORTED, "mistral"},
        {"model_type", "7", DS8B_E_FORMAT, "model_type"},
        {"hidden_size", "\"4096\"", DS8B_E_FORMAT, "hidden_size"},
        {"hidden_size", "0", DS8B_E_FORMAT, "hidden_size"},
        {"hidden_size", "-256", DS8B_E_FORMAT, "hidden_size"},
        {"hidden_size", "256.5", DS8B_E_FORMAT, "hidden_size"},
        {"hidden_size", "1e300", DS8B_E_FORMAT, "hidden_size"},
        {"hidden_size", "[256]", DS8B_E_FORMAT, "hidden_size"},
        {"num_hidden_layers", "0", DS8B_E_FORMAT, "num_hidden_layers"},
        {"num_hidden_layers", "100000", DS8B_E_FORMAT, "num_hidden_layers"},
        {"vocab_size", "-1", DS8B_E_FORMAT, "vocab_size"},
        {"vocab_size", "1e12", DS8B_E_FORMAT, "vocab_size"},
        {"intermediate_size", "true", DS8B_E_FORMAT, "intermediate_size"},
        {"num_key_value_heads", "3", DS8B_E_FORMAT, "num_key_value_heads"},
        {"num_key_value_heads", "16", DS8B_E_FORMAT, "num_key_value_heads"},
        {"num_key_value_heads", "0", DS8B_E_FORMAT, "num_key_value_heads"},
        {"num_attention_heads", "7", DS8B_E_FORMAT, "num_attention_heads"},
        {"head_dim", "33", DS8B_E_FORMAT, "head_dim"},
        {"head_dim", "\"x\"", DS8B_E_FORMAT, "head_dim"},
        {"rms_norm_eps", "0", DS8B_E_FORMAT, "rms_norm_eps"},
        {"rms_norm_eps", "\"1e-5\"", DS8B_E_FORMAT, "rms_norm_eps"},
        {"rope_theta", "-1", DS8B_E_FORMAT, "rope_theta"},
        {"rope_theta", "null", 0, NULL},
        {"tie_word_embeddings", "1", DS8B_E_FORMAT, "tie_word_embeddings"},
        {"bos_token_id", "\"a\"", DS8B_E_FORMAT, "bos_token_id"},
        {"eos_token_id", "[1, \"b\"]", DS8B_E_FORMAT, "eos_token_id"},
        {"eos_token_id", "99999999", DS8B_E_FORMAT, "eos_token_id"},
        {"eos_token_id", "[1, 2, 3]", 0, NULL},
        {"eos_token_id", "null", 0, NULL},
        {"rope_scaling", "7", DS8B_E_FORMAT, "rope_scaling"},
        {"rope_scaling", "null", 0, NULL},
        {"rope_scaling", "{\"rope_type\":\"dynamic\",\"factor\":2}", DS8B_E_UNSUPPORTED, "dynamic"},
        {"rope_scaling", "{\"type\":\"wobbly\",\"factor\":2}", DS8B_E_UNSUPPORTED, "wobbly"},
        {"rope_scaling", "{\"factor\":2}", DS8B_E_FORMAT, "rope_type"},
        {"rope_scaling", "{\"rope_type\":\"linear\"}", DS8B_E_FORMAT, "factor"},
        {"rope_scaling", "{\"type\":\"linear\",\"factor\":2}", 0, NULL},
        {"rope_scaling", "{\"rope_type\":\"default\"}", 0, NULL},
        {"rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":\"4\"}", DS8B_E_FORMAT, "factor"},
        {"rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4,\"attn_factor\":\"x\"}", DS8B_E_FORMAT,
         "attn_factor"},
        {"rope_scaling.factor", "-8", DS8B_E_FORMAT, "factor"},
        {"rope_scaling.factor", NULL, DS8B_E_FORMAT, "factor"},
        {"rope_scaling.original_max_position_embeddings", NULL, DS8B_E_FORMAT,
         "original_max_position_embeddings"},
        {"rope_scaling.high_freq_factor", "1", DS8B_E_FORMAT, "high_freq_factor"},
        {"rope_scaling.low_freq_factor", "[]", DS8B_E_FORMAT, "low_freq_factor"},
        {"rope_scaling.rope_type", "\"su\"", DS8B_E_UNSUPPORTED, "su"},
    };
    char p[1024];
    cJSON *base = read_json(t_path(p, sizeof p, "models/demo-llama/config.json"));
    CHECK(base != NULL, "base config");
    if (!base) return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cfg_case *k = &cases[i];
        cJSON *c = cJSON_Duplicate(base, 1);
        apply_case(c, k);
        ds8b__hparams hp;
        ds8b__err e = {0};
        int rc = cfg_parse_json(c, &hp, &e);
        CHECK(rc == k->code, "%s=%s: rc %d want %d (%s)", k->key, k->value ? k->value : "(deleted)", rc,
              k->code, e.msg);
        if (k->needle)
            CHECK(strstr(e.msg, k->needle) && strstr(e.msg, "test-config.json"),
                  "%s=%s: message \"%s\" lacks \"%s\"", k->key, k->value ? k->value : "(deleted)", e.msg,
                  k->needle);
        cJSON_Delete(c);
    }
    /* Defaults. */
    cJSON *c = cJSON_Duplicate(base, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(c, "num_key_value_heads");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "rope_theta");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "tie_word_embeddings");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "bos_token_id");
    ds8b__hparams hp;
    ds8b__err e = {0};
    CHECK(cfg_parse_json(c, &hp, &e) == 0, "defaults: %s", e.msg);
    CHECK(hp.n_head_kv == hp.n_head && hp.rope_theta == 10000 && !hp.tie_embd && hp.bos == -1,
          "defaults kv %lld theta %g", (long long)hp.n_head_kv, hp.rope_theta);
    cJSON_Delete(c);
    /* Not JSON, not an object, truncated. */
    const char *bad[] = {"", "{", "[]", "null", "{\"model_type\":\"llama\"", "\x01\x02"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(ds8b__hf_config_parse(bad[i], strlen(bad[i]), "x.json", &hp, &e) == DS8B_E_FORMAT,
              "bad %zu", i);
        CHECK(strstr(e.msg, "x.json") != NULL, "bad %zu names file: %s", i, e.msg);
    }
    /* Every truncation of a real config fails cleanly. */
    char *s = cJSON_Print(base);
    size_t n = strlen(s);
    for (size_t k = 0; k + 1 < n; k++)
        CHECK(ds8b__hf_config_parse(s, k, "x.json", &hp, &e) != 0, "truncated at %zu parsed", k);
    free(s);
    cJSON_Delete(base);
}

/* ------------------------------------------------------------------ */
/* Safetensors                                                         */
/* ------------------------------------------------------------------ */
/* A safetensors image: header JSON (padded with spaces to pad bytes when
 * pad > 0) then data_len bytes i*7. */
static unsigned char *st_image(const char *hdr, size_t pad, size_t data_len, size_t *len) {
    size_t h = strlen(hdr);
    size_t hp = pad ? (h + pad - 1) / pad * pad : h;
    *len = 8 + hp + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, ' ', hp - h);
    for (size_t i = 0; i < data_len; i++) b[8 + hp + i] = (unsigned char)(i * 7);
    return b;
}

static const char *k_good_hdr =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]},"
    "\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]},"
    "\"d\":{\"dtype\":\"F16\",\"shape\":[1,2,1,3],\"data_offsets\":[56,68]},"
    "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[68,68]},"
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[68,72]}}";

static void test_st_synthetic(void) {
    size_t len;
    unsigned char *img = st_image(k_good_hdr, 8, 72, &len);
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    int rc = ds8b__st_parse_mem(img, len, "good", &s, &e);
    CHECK(rc == 0, "good: %s", e.msg);
    if (rc == 0) {
        CHECK(ds8b__st_n_tensors(s) == 6, "n %lld", (long long)ds8b__st_n_tensors(s));
        const ds8b__tensor *a = ds8b__st_find(s, "a.weight");
        CHECK(a && a->type == DS8B_T_BF16 && a->n_dims == 2 && a->ne[0] == 4 && a->ne[1] == 3 &&
                  a->ne[2] == 1 && a->nbytes == 24,
              "a.weight");
        size_t hl = len - 72 - 8;
        CHECK(a && a->data == img + 8 + hl, "a data");
        const ds8b__tensor *c = ds8b__st_find(s, "c");
        CHECK(c && c->type == DS8B__ST_T_OTHER && strcmp(ds8b__st_dtype(s, c), "I64") == 0 &&
                  c->data == img + 8 + hl + 40,
              "c kept as I64");
        const ds8b__tensor *d = ds8b__st_find(s, "d");
        CHECK(d && d->n_dims == 4 && d->ne[0] == 3 && d->ne[1] == 1 && d->ne[2] == 2 && d->ne[3] == 1,
              "d dims");
        const ds8b__tensor *z = ds8b__st_find(s, "e");
        CHECK(z && z->nbytes == 0 && z->ne[1] == 0 && z->ne[0] == 5, "empty tensor");
        const ds8b__tensor *sc = ds8b__st_find(s, "s");
        CHECK(sc && sc->n_dims == 0 && sc->nbytes == 4, "scalar");
        CHECK(!ds8b__st_find(s, "__metadata__") && !ds8b__st_find(s, "zz") && !ds8b__st_find(s, ""),
              "absent");
        CHECK(ds8b__st_tensor(s, -1) == NULL && ds8b__st_tensor(s, 6) == NULL &&
                  ds8b__st_tensor(s, 0) != NULL,
              "tensor bounds");
        CHECK(ds8b__st_mapped_bytes(s) == 0, "mem has no maps");
    }
    ds8b__st_close(s);

    /* Every truncation fails and names the buffer. */
    for (size_t k = 0; k < len; k++) {
        rc = ds8b__st_parse_mem(img, k, "trunc", &s, &e);
        CHECK(rc != 0 && s == NULL, "truncated at %zu parsed", k);
        CHECK(strstr(e.msg, "trunc") != NULL, "names file: %s", e.msg);
    }
    /* Truncated files on disk, through the mmap path. */
    char p[512];
    snprintf(p, sizeof p, "%s/trunc.safetensors", g_tmp);
    for (size_t k = 0; k < len; k += 5) {
        write_file(p, img, k);
        rc = ds8b__st_open_file(p, &s, &e);
        CHECK(rc != 0 && s == NULL, "file truncated at %zu opened", k);
    }
    write_file(p, img, len);
    rc = ds8b__st_open_file(p, &s, &e);
    CHECK(rc == 0 && ds8b__st_mapped_bytes(s) == (int64_t)len, "whole file: %s", e.msg);
    ds8b__st_close(s);

    /* Header length larger than the file, and beyond the cap. */
    unsigned char *big = malloc(len);
    memcpy(big, img, len);
    big[7] = 0x7f;
    rc = ds8b__st_parse_mem(big, len, "huge", &s, &e);
    CHECK(rc == DS8B_E_FORMAT && strstr(e.msg, "header length"), "huge: %d %s", rc, e.msg);
    memset(big, 0xff, 8);
    rc = ds8b__st_parse_mem(big, len, "huge", &s, &e);
    CHECK(rc == DS8B_E_FORMAT, "all ones: %d %s", rc, e.msg);
    free(big);
    free(img);
}

typedef struct st_case {
    const char *hdr;
    size_t data_len;
    int code;
    const char *needle;
} st_case;

static void test_st_errors(void) {
    static const st_case cases[] = {
        {"{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}", 4, DS8B_E_FORMAT, "JSON"},
        {"not json at all", 0, DS8B_E_FORMAT, "JSON"},
        {"[1,2]", 0, DS8B_E_FORMAT, "object"},
        {"{} x", 0, DS8B_E_FORMAT, "junk"},
        {"{\"w.past\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 6, DS8B_E_FORMAT, "w.past"},
        {"{\"w.far\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[1e15,1000000000000004]}}", 6,
         DS8B_E_FORMAT, "w.far"},
        {"{\"w.rev\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[4,2]}}", 6, DS8B_E_FORMAT, "w.rev"},
        {"{\"w.one\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"w.two\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[6,14]}}",
         16, DS8B_E_FORMAT, "overlap"},
        {"{\"w.one\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"w.two\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}",
         16, DS8B_E_FORMAT, "w.two"},
        {"{\"w.size\":{\"dtype\":\"BF16\",\"shape\":[4,3],\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.size"},
        {"{\"w.dt\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.dt"},
        {"{\"w.dt2\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.dt2"},
        {"{\"w.nodt\":{\"shape\":[4],\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.nodt"},
        {"{\"w.neg\":{\"dtype\":\"BF16\",\"shape\":[-4],\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.neg"},
        {"{\"w.frac\":{\"dtype\":\"BF16\",\"shape\":[2.5],\"data_offsets\":[0,5]}}", 8, DS8B_E_FORMAT, "w.frac"},
        {"{\"w.5d\":{\"dtype\":\"BF16\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,8]}}", 8,
         DS8B_E_UNSUPPORTED, "w.5d"},
        {"{\"w.ovf\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         DS8B_E_FORMAT, "w.ovf"},
        {"{\"w.ovf2\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,2],\"data_offsets\":[0,8]}}", 8,
         DS8B_E_FORMAT, "w.ovf2"},
        {"{\"w.off\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0]}}", 8, DS8B_E_FORMAT, "w.off"},
        {"{\"w.off2\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":\"0,8\"}}", 8, DS8B_E_FORMAT, "w.off2"},
        {"{\"w.shp\":{\"dtype\":\"BF16\",\"shape\":4,\"data_offsets\":[0,8]}}", 8, DS8B_E_FORMAT, "w.shp"},
        {"{\"w.obj\":[1,2]}", 8, DS8B_E_FORMAT, "w.obj"},
        {"{\"__metadata__\":5}", 0, DS8B_E_FORMAT, "__metadata__"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char *img = st_image(cases[i].hdr, 8, cases[i].data_len, &len);
        ds8b__st *s = NULL;
        ds8b__err e = {0};
        int rc = ds8b__st_parse_mem(img, len, "case.safetensors", &s, &e);
        CHECK(rc == cases[i].code && s == NULL, "case %zu: rc %d want %d (%s)", i, rc, cases[i].code, e.msg);
        CHECK(strstr(e.msg, cases[i].needle) && strstr(e.msg, "case.safetensors"),
              "case %zu: message \"%s\" lacks \"%s\"", i, e.msg, cases[i].needle);
        ds8b__st_close(s);
        free(img);
    }
    /* Data misaligned for its element type (header not padded). */
    const char *h = "{\"w.mis\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    char hh[256];
    snprintf(hh, sizeof hh, "%s%s", h, strlen(h) % 2 ? "" : " ");
    size_t len;
    unsigned char *img = st_image(hh, 0, 4, &len);
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    int rc = ds8b__st_parse_mem(img, len, "mis", &s, &e);
    CHECK(rc == DS8B_E_UNSUPPORTED && strstr(e.msg, "w.mis"), "misaligned: %d %s", rc, e.msg);
    free(img);
}

/* Opens each demo model and checks it against its index and config. */
static void check_model_dir(const char *rel) {
    char dir[1024], p[1200];
    t_path(dir, sizeof dir, rel);
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    int rc = ds8b__st_open_dir(dir, &s, &e);
    CHECK(rc == 0, "%s: %s", rel, e.msg);
    if (rc) return;
    snprintf(p, sizeof p, "%s/config.json", dir);
    size_t clen;
    char *cj = slurp(p, &clen);
    ds8b__hparams hp;
    rc = ds8b__hf_config_parse(cj, clen, p, &hp, &e);
    CHECK(rc == 0, "%s config: %s", rel, e.msg);
    free(cj);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    cJSON *idx = read_json(p);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    int n = 0;
    const cJSON *it;
    int64_t mapped = 0;
    char seen[16][256];
    int n_seen = 0;
    cJSON_ArrayForEach(it, wm) {
        const ds8b__tensor *t = ds8b__st_find(s, it->string);
        CHECK(t != NULL, "%s: %s missing", rel, it->string);
        if (t) CHECK(t->type == DS8B_T_BF16 && strcmp(t->name, it->string) == 0, "%s type", it->string);
        n++;
        int k;
        for (k = 0; k < n_seen && strcmp(seen[k], it->valuestring); k++) {}
        if (k == n_seen && n_seen < 16) {
            snprintf(seen[n_seen++], 256, "%s", it->valuestring);
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, it->valuestring);
            if (stat(p, &st) == 0) mapped += st.st_size;
        }
    }
    CHECK(n > 0 && n == ds8b__st_n_tensors(s), "%s: %d in index, %lld opened", rel, n,
          (long long)ds8b__st_n_tensors(s));
    CHECK(ds8b__st_mapped_bytes(s) == mapped, "%s mapped %lld want %lld", rel,
          (long long)ds8b__st_mapped_bytes(s), (long long)mapped);
    /* Total bytes match the index's metadata. */
    size_t total = 0;
    for (int64_t i = 0; i < ds8b__st_n_tensors(s); i++) total += ds8b__st_tensor(s, i)->nbytes;
    double want_total = jnum(cJSON_GetObjectItemCaseSensitive(idx, "metadata"), "total_size", -1);
    CHECK((double)total == want_total, "%s total %zu want %.0f", rel, total, want_total);
    cJSON_Delete(idx);
    if (rc == 0) {
        int64_t d = hp.n_embd, q = hp.n_head * hp.head_dim, kv = hp.n_head_kv * hp.head_dim;
        struct {
            const char *name;
            int64_t ne0, ne1;
            int nd;
        } want[] = {
            {"model.embed_tokens.weight", d, hp.n_vocab, 2},
            {"model.norm.weight", d, 1, 1},
            {"model.layers.0.self_attn.q_proj.weight", d, q, 2},
            {"model.layers.0.self_attn.k_proj.weight", d, kv, 2},
            {"model.layers.0.self_attn.v_proj.weight", d, kv, 2},
            {"model.layers.0.self_attn.o_proj.weight", q, d, 2},
            {"model.layers.0.mlp.gate_proj.weight", d, hp.n_ff, 2},
            {"model.layers.0.mlp.down_proj.weight", hp.n_ff, d, 2},
            {"model.layers.0.input_layernorm.weight", d, 1, 1},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const ds8b__tensor *t = ds8b__st_find(s, want[i].name);
            CHECK(t && t->n_dims == want[i].nd && t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1,
                  "%s %s: ne %lld x %lld", rel, want[i].name, t ? (long long)t->ne[0] : -1,
                  t ? (long long)t->ne[1] : -1);
        }
        char nm[128];
        snprintf(nm, sizeof nm, "model.layers.%lld.mlp.up_proj.weight", (long long)hp.n_layer - 1);
        CHECK(ds8b__st_find(s, nm) != NULL, "%s: last layer", rel);
        snprintf(nm, sizeof nm, "model.layers.%lld.mlp.up_proj.weight", (long long)hp.n_layer);
        CHECK(ds8b__st_find(s, nm) == NULL, "%s: no extra layer", rel);
        CHECK((ds8b__st_find(s, "lm_head.weight") == NULL) == hp.tie_embd, "%s lm_head vs tie", rel);
        if (hp.arch == DS8B_ARCH_QWEN3) {
            const ds8b__tensor *t = ds8b__st_find(s, "model.layers.0.self_attn.q_norm.weight");
            CHECK(t && t->n_dims == 1 && t->ne[0] == hp.head_dim, "%s q_norm", rel);
        }
    }
    /* The data pointer of the embedding holds the file's bytes: check a
     * row against a plain read of the shard. */
    const ds8b__tensor *t = ds8b__st_find(s, "model.norm.weight");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    idx = read_json(p);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(idx, "weight_map"),
                                                       "model.norm.weight");
    if (t && cJSON_IsString(sh)) {
        snprintf(p, sizeof p, "%s/%s", dir, sh->valuestring);
        size_t flen;
        unsigned char *f = (unsigned char *)slurp(p, &flen);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | f[i];
        char *hj = malloc(hl + 1);
        memcpy(hj, f + 8, hl);
        hj[hl] = 0;
        cJSON *h = cJSON_Parse(hj);
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "model.norm.weight"),
                                                            "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        CHECK(memcmp(t->data, f + 8 + hl + b, t->nbytes) == 0, "%s norm bytes", rel);
        cJSON_Delete(h);
        free(hj);
        free(f);
    }
    cJSON_Delete(idx);
    ds8b__st_close(s);
}

static void test_st_demo_models(void) {
    check_model_dir("models/demo-llama");
    check_model_dir("models/demo-qwen3");
}

/* Truncated copies of a real shard (the header region, then the data). */
static void test_st_real_truncated(void) {
    char p[1024];
    size_t flen;
    unsigned char *f = (unsigned char *)slurp(t_path(p, sizeof p, "models/demo-qwen3/model-00002-of-00002.safetensors"), &flen);
    CHECK(f != NULL, "shard readable");
    if (!f) return;
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__st_parse_mem(f, flen, "full", &s, &e) == 0, "full shard: %s", e.msg);
    ds8b__st_close(s);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f[i];
    for (size_t k = 0; k < flen; k = k < hl + 64 ? k + 1 : k * 2 + 1) {
        int rc = ds8b__st_parse_mem(f, k, "cut", &s, &e);
        CHECK(rc != 0 && s == NULL, "cut at %zu parsed", k);
    }
    /* Flip bytes in the header: never crashes; success or a clean error. */
    unsigned char *g = malloc(flen);
    for (size_t k = 8; k < 8 + hl; k += 3) {
        memcpy(g, f, flen);
        g[k] ^= 0x5a;
        int rc = ds8b__st_parse_mem(g, flen, "flip", &s, &e);
        CHECK(rc == 0 || (s == NULL && e.msg[0]), "flip %zu", k);
        ds8b__st_close(s);
        s = NULL;
    }
    free(g);
    free(f);
}

/* A temporary checkpoint directory holding the given files. */
static void mk_ckpt(const char *name, const char *index, const char *hdr1, const char *hdr2, char *dir,
                    size_t cap) {
    snprintf(dir, cap, "%s/%s", g_tmp, name);
    mkdir(dir, 0700);
    char p[600];
    if (index) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        write_file(p, index, strlen(index));
    }
    const char *hdrs[2] = {hdr1, hdr2};
    for (int i = 0; i < 2; i++) {
        if (!hdrs[i]) continue;
        size_t len;
        unsigned char *img = st_image(hdrs[i], 8, 16, &len);
        snprintf(p, sizeof p, "%s/s%d.safetensors", dir, i + 1);
        write_file(p, img, len);
        free(img);
    }
}

static void test_st_sharded_errors(void) {
    const char *h1 = "{\"x.a\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[0,16]}}";
    const char *h2 = "{\"x.b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    const char *h2dup = "{\"x.a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    struct {
        const char *name, *index, *h1, *h2;
        int code;
        const char *n1, *n2;
    } cases[] = {
        {"ok", "{\"weight_map\":{\"x.a\":\"s1.safetensors\",\"x.b\":\"s2.safetensors\"}}", h1, h2, 0, NULL, NULL},
        {"missing-shard", "{\"weight_map\":{\"x.a\":\"s1.safetensors\",\"x.b\":\"s9.safetensors\"}}", h1, h2,
         DS8B_E_IO, "s9.safetensors", NULL},
        {"dotdot", "{\"weight_map\":{\"x.a\":\"../s1.safetensors\"}}", h1, h2, DS8B_E_FORMAT,
         "../s1.safetensors", "x.a"},
        {"slash", "{\"weight_map\":{\"x.a\":\"/etc/passwd\"}}", h1, h2, DS8B_E_FORMAT, "/etc/passwd", NULL},
        {"not-in-shard", "{\"weight_map\":{\"x.a\":\"s1.safetensors\",\"x.c\":\"s2.safetensors\"}}", h1, h2,
         DS8B_E_FORMAT, "x.c", "s2.safetensors"},
        {"wrong-shard", "{\"weight_map\":{\"x.a\":\"s1.safetensors\",\"x.b\":\"s1.safetensors\"}}", h1, h2,
         DS8B_E_FORMAT, "x.b", "s1.safetensors"},
        {"dup-across", "{\"weight_map\":{\"x.a\":\"s1.safetensors\",\"y\":\"s2.safetensors\"}}", h1, h2dup,
         DS8B_E_FORMAT, "x.a", "s2.safetensors"},
        {"no-map", "{\"metadata\":{}}", h1, h2, DS8B_E_FORMAT, "weight_map", NULL},
        {"empty-map", "{\"weight_map\":{}}", h1, h2, DS8B_E_FORMAT, "weight_map", NULL},
        {"map-int", "{\"weight_map\":{\"x.a\":3}}", h1, h2, DS8B_E_FORMAT, "x.a", NULL},
        {"bad-index", "{\"weight_map\":", h1, h2, DS8B_E_FORMAT, "index", NULL},
        {"bad-shard", "{\"weight_map\":{\"x.a\":\"s1.safetensors\"}}", "{\"x.a\":", NULL, DS8B_E_FORMAT,
         "s1.safetensors", NULL},
        {"empty", NULL, NULL, NULL, DS8B_E_IO, "model.safetensors", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[512];
        mk_ckpt(cases[i].name, cases[i].index, cases[i].h1, cases[i].h2, dir, sizeof dir);
        ds8b__st *s = NULL;
        ds8b__err e = {0};
        int rc = ds8b__st_open_dir(dir, &s, &e);
        CHECK(rc == cases[i].code, "%s: rc %d want %d (%s)", cases[i].name, rc, cases[i].code, e.msg);
        if (cases[i].n1) CHECK(strstr(e.msg, cases[i].n1), "%s: \"%s\" lacks %s", cases[i].name, e.msg, cases[i].n1);
        if (cases[i].n2) CHECK(strstr(e.msg, cases[i].n2), "%s: \"%s\" lacks %s", cases[i].name, e.msg, cases[i].n2);
        if (rc == 0) {
            CHECK(ds8b__st_n_tensors(s) == 2 && ds8b__st_find(s, "x.a") && ds8b__st_find(s, "x.b"),
                  "ok dir tensors");
            CHECK(ds8b__st_find(s, "x.b")->type == DS8B_T_F32 && ds8b__st_find(s, "x.b")->ne[1] == 2, "x.b");
        }
        ds8b__st_close(s);
    }
    /* The same index given in memory. */
    {
        char okdir[512];
        snprintf(okdir, sizeof okdir, "%s/ok", g_tmp);
        ds8b__st *s = NULL;
        ds8b__err e = {0};
        int rc = ds8b__st_open_index_mem(okdir, cases[0].index, strlen(cases[0].index), "mem.index", &s, &e);
        CHECK(rc == 0 && ds8b__st_n_tensors(s) == 2, "index in memory: %s", e.msg);
        ds8b__st_close(s);
        rc = ds8b__st_open_index_mem(okdir, cases[4].index, strlen(cases[4].index), "mem.index", &s, &e);
        CHECK(rc == DS8B_E_FORMAT && strstr(e.msg, "mem.index") && strstr(e.msg, "x.c"), "mem index: %s", e.msg);
    }
    /* A single-file checkpoint without an index. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/single", g_tmp);
    mkdir(dir, 0700);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len;
    unsigned char *img = st_image(k_good_hdr, 8, 72, &len);
    write_file(p, img, len);
    free(img);
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    int rc = ds8b__st_open_dir(dir, &s, &e);
    CHECK(rc == 0 && ds8b__st_n_tensors(s) == 6, "single: %s", e.msg);
    ds8b__st_close(s);
    rc = ds8b__st_open_dir("/nonexistent/dir", &s, &e);
    CHECK(rc == DS8B_E_IO && strstr(e.msg, "/nonexistent/dir"), "no dir: %s", e.msg);
}

/* A table with many tensors: the hash table finds every one. */
static void test_st_many(void) {
    int n = 3000;
    size_t cap = (size_t)n * 96 + 16;
    char *h = malloc(cap);
    size_t k = 0;
    k += (size_t)snprintf(h + k, cap - k, "{");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(h + k, cap - k, "%s\"blk.%d.w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              i ? "," : "", i, (n - 1 - i) * 2, (n - i) * 2);
    snprintf(h + k, cap - k, "}");
    size_t len;
    unsigned char *img = st_image(h, 8, (size_t)n * 2, &len);
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    int rc = ds8b__st_parse_mem(img, len, "many", &s, &e);
    CHECK(rc == 0 && ds8b__st_n_tensors(s) == n, "many: %s", e.msg);
    int bad = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "blk.%d.w", i);
        const ds8b__tensor *t = ds8b__st_find(s, nm);
        if (!t || strcmp(t->name, nm) || t->data != (const void *)(img + len - (size_t)n * 2 + (size_t)(n - 1 - i) * 2))
            bad++;
    }
    CHECK(bad == 0, "%d lookups wrong", bad);
    ds8b__st_close(s);
    free(img);
    free(h);
}

/* Writes fuzz seeds (each < 64 KB). */
static void write_corpus(const char *root) {
    char p[1024], q[1200];
    snprintf(p, sizeof p, "%s/safetensors", root);
    mkdir(p, 0755);
    size_t len;
    unsigned char *img = st_image(k_good_hdr, 8, 72, &len);
    snprintf(q, sizeof q, "%s/good", p);
    write_file(q, img, len);
    free(img);
    img = st_image("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                   "\"v\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
                   8, 12, &len);
    snprintf(q, sizeof q, "%s/two", p);
    write_file(q, img, len);
    free(img);
    img = st_image("{\"w.one\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                   "\"w.two\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[6,14]}}",
                   8, 16, &len);
    snprintf(q, sizeof q, "%s/overlap", p);
    write_file(q, img, len);
    free(img);
    /* The header of a real shard with its data cut short. */
    char r[1024];
    size_t flen;
    unsigned char *f = (unsigned char *)slurp(t_path(r, sizeof r, "models/demo-llama/model-00001-of-00002.safetensors"), &flen);
    if (f) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | f[i];
        size_t n = 8 + hl + 512;
        if (n < 60000 && n < flen) {
            snprintf(q, sizeof q, "%s/real-header", p);
            write_file(q, f, n);
        }
        free(f);
    }
    snprintf(p, sizeof p, "%s/config", root);
    mkdir(p, 0755);
    const char *cfgs[][2] = {{"models/demo-llama/config.json", "demo-llama"},
                             {"models/demo-qwen3/config.json", "demo-qwen3"}};
    for (int i = 0; i < 2; i++) {
        char *s = slurp(t_path(r, sizeof r, cfgs[i][0]), &flen);
        if (!s) continue;
        snprintf(q, sizeof q, "%s/%s", p, cfgs[i][1]);
        write_file(q, s, flen);
        free(s);
    }
    cJSON *ref = read_json(t_path(r, sizeof r, "testdata/reference/demo-qwen3-yarn.json"));
    const char *keys[] = {"config_shipped", "config_computed_with"};
    for (int i = 0; i < 2 && ref; i++) {
        char *s = cJSON_Print(cJSON_GetObjectItemCaseSensitive(ref, keys[i]));
        snprintf(q, sizeof q, "%s/yarn-%s", p, keys[i]);
        write_file(q, s, strlen(s));
        free(s);
    }
    cJSON_Delete(ref);
    const char *extra = "{\"model_type\":\"qwen3\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":null,"
                        "\"intermediate_size\":128,\"vocab_size\":100,\"rms_norm_eps\":1e-6,"
                        "\"max_position_embeddings\":512,\"eos_token_id\":[1,2],\"bos_token_id\":null,"
                        "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":8,\"mscale\":1,\"mscale_all_dim\":0.5,"
                        "\"beta_fast\":16}}";
    snprintf(q, sizeof q, "%s/small-yarn-mscale", p);
    write_file(q, extra, strlen(extra));
    const char *lin = "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                      "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100,"
                      "\"rms_norm_eps\":1e-5,\"max_position_embeddings\":512,\"tie_word_embeddings\":true,"
                      "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2}}";
    snprintf(q, sizeof q, "%s/small-linear", p);
    write_file(q, lin, strlen(lin));
}

/* Allocation failures at every step: a clean DS8B_E_NOMEM (or success), and
 * nothing leaked either way. */
static void test_oom(void) {
    size_t len;
    unsigned char *img = st_image(k_good_hdr, 8, 72, &len);
    char p[1024];
    size_t clen;
    char *cfg = slurp(t_path(p, sizeof p, "testdata/reference/demo-qwen3-yarn.json"), &clen);
    cJSON *ref = cJSON_Parse(cfg);
    free(cfg);
    cfg = cJSON_Print(cJSON_GetObjectItemCaseSensitive(ref, "config_shipped"));
    cJSON_Delete(ref);
    int64_t base = ds8b_memory_used(-1);
    int st_ok = 0, cfg_ok = 0, dir_ok = 0, n_nomem = 0;
    char dir[1024];
    t_path(dir, sizeof dir, "models/demo-llama");
    for (int64_t lim = 64; lim < (1 << 20) && !(st_ok && cfg_ok && dir_ok); lim = lim * 5 / 4 + 64) {
        ds8b_hard_heap_limit(base + lim);
        ds8b__st *s = NULL;
        ds8b__err e = {0};
        int rc;
        if (!st_ok) {
            rc = ds8b__st_parse_mem(img, len, "oom", &s, &e);
            CHECK(rc == 0 || (rc == DS8B_E_NOMEM && s == NULL), "st limit %lld: %d %s", (long long)lim, rc, e.msg);
            st_ok = rc == 0;
            n_nomem += rc == DS8B_E_NOMEM;
            ds8b__st_close(s);
            s = NULL;
        }
        if (!dir_ok) {
            rc = ds8b__st_open_dir(dir, &s, &e);
            CHECK(rc == 0 || (rc == DS8B_E_NOMEM && s == NULL), "dir limit %lld: %d %s", (long long)lim, rc, e.msg);
            dir_ok = rc == 0;
            n_nomem += rc == DS8B_E_NOMEM;
            ds8b__st_close(s);
        }
        if (!cfg_ok) {
            ds8b__hparams hp;
            rc = ds8b__hf_config_parse(cfg, strlen(cfg), "oom.json", &hp, &e);
            CHECK(rc == 0 || rc == DS8B_E_NOMEM, "cfg limit %lld: %d %s", (long long)lim, rc, e.msg);
            cfg_ok = rc == 0;
            n_nomem += rc == DS8B_E_NOMEM;
        }
        ds8b_hard_heap_limit(0);
        CHECK(ds8b_memory_used(-1) == base, "leak at limit %lld: %lld bytes", (long long)lim,
              (long long)(ds8b_memory_used(-1) - base));
    }
    ds8b_hard_heap_limit(0);
    CHECK(st_ok && cfg_ok && dir_ok, "eventually succeeded %d %d %d", st_ok, cfg_ok, dir_ok);
    CHECK(n_nomem >= 3, "only %d allocation failures injected", n_nomem);
    free(cfg);
    free(img);
}

static int64_t g_heap0, g_mapped0;
static void test_no_leaks(void) {
    CHECK(ds8b_memory_used(-1) == g_heap0, "heap leaked %lld bytes", (long long)(ds8b_memory_used(-1) - g_heap0));
    CHECK(ds8b_memory_used(DS8B_MEM_MAPPED) == g_mapped0, "maps leaked %lld bytes",
          (long long)(ds8b_memory_used(DS8B_MEM_MAPPED) - g_mapped0));
}

int main(int argc, char **argv) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ds8b-test-formats-%d", (int)getpid());
    mkdir(g_tmp, 0700);
    if (argc == 3 && strcmp(argv[1], "--corpus") == 0) write_corpus(argv[2]);
    g_heap0 = ds8b_memory_used(-1);
    g_mapped0 = ds8b_memory_used(DS8B_MEM_MAPPED);
    RUN(test_config_files);
    RUN(test_config_yarn);
    RUN(test_config_errors);
    RUN(test_st_synthetic);
    RUN(test_st_errors);
    RUN(test_st_demo_models);
    RUN(test_st_real_truncated);
    RUN(test_st_sharded_errors);
    RUN(test_st_many);
    RUN(test_oom);
    RUN(test_no_leaks);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("  # could not remove %s\n", g_tmp);
    T_EXIT();
}
