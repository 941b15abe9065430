/*
 * cmd_eval.c -- ds8b eval (logits of an id sequence to a file), ds8b
 * perplexity and ds8b kld (mean NLL over windows, against a base model).
 */
#include "cli.h"
#include "kernels/kernels.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* eval and perplexity                                                 */
/* ================================================================== */
const cli_optdef eval_opts[] = {
    {"-m", CLI_STR, "PATH", CLI_REQ},
    {"--ids", CLI_STR, "JSON_ARRAY", CLI_REQ},
    {"--logits-out", CLI_STR, "FILE", CLI_REQ},
    {0},
};

int cmd_eval(const cli_args *a) {
    const char *path = cli_opt(a, "-m"), *ids_json = cli_opt(a, "--ids");
    const char *out_path = cli_opt(a, "--logits-out");
    size_t n;
    int32_t *ids = cli_parse_ids(ids_json, &n);
    if (!ids || n == 0) { free(ids); return cli_usage(a, "--ids must be a non-empty JSON array of integers"); }
    ds8b_params *p = cli_session_params(a);
    ds8b_model *m;
    if (!p) { free(ids); return 2; }
    if ((int64_t)n > 4096) ds8b_params_set_int(p, DS8B_PARAM_N_CTX, (int64_t)n);
    if (cli_load(a, path, &m)) { free(ids); ds8b_params_free(p); return 1; }
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *logits = rc ? NULL : malloc(n * (size_t)vocab * sizeof(float));
    int ret = 0;
    if (rc) ret = cli_fail("creating the session", rc);
    else if (!logits) ret = cli_fail("allocating logits", DS8B_E_NOMEM);
    else if ((rc = ds8b_eval(s, ids, n, logits))) ret = cli_fail("evaluating", rc);
    else {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(logits, sizeof(float), n * (size_t)vocab, f) != n * (size_t)vocab) {
            fprintf(stderr, "ds8b: cannot write %s: %s\n", out_path, strerror(errno));
            ret = 1;
        }
        if (f && fclose(f) != 0) ret = 1;
    }
    free(logits);
    free(ids);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return ret;
}

/* log(sum(exp(row))) of a row of logits, computed stably; *argmax gets
 * the index of the largest. */
static double log_z(const float *row, int64_t vocab, int64_t *argmax) {
    double mx = row[0], z = 0;
    *argmax = 0;
    for (int64_t k = 1; k < vocab; k++)
        if (row[k] > mx) { mx = row[k]; *argmax = k; }
    for (int64_t k = 0; k < vocab; k++) z += exp(row[k] - mx);
    return mx + log(z);
}

/* Mean NLL of each window; optional KL divergence and top-1 agreement
 * against a base model evaluated on the same windows. */
const cli_optdef perplexity_opts[] = {
    {"-m", CLI_STR, "PATH", CLI_REQ},
    {"--windows", CLI_STR, "FILE", CLI_REQ},
    {"--lang", CLI_STR, "L"},
    {"--base", CLI_STR, "FLOAT_MODEL"},
    {0},
};

static int perplexity(const cli_args *a, bool kld) {
    const char *path = cli_opt(a, "-m"), *wpath = cli_opt(a, "--windows");
    const char *base_path = cli_opt(a, "--base");
    if (kld && !base_path) return cli_usage(a, "needs --base FLOAT_MODEL");
    size_t len;
    char *js = cli_read_file(wpath, &len);
    if (!js) return 1;
    cJSON *root = cJSON_Parse(js);
    free(js);
    /* accept a bare array of windows, an object with "windows", or a
     * reference file with "perplexity": {LANG: {"windows": ...}} (--lang
     * picks one language; default: all of them) */
    cJSON *wins = root;
    const char *lang = cli_opt(a, "--lang");
    /* per language (reference files): its name and how many windows it has */
    enum { MAX_LANGS = 16 };
    const char *lnames[MAX_LANGS];
    int lcount[MAX_LANGS], nl = 0;
    if (root && cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "perplexity")) {
        cJSON *ppl = cJSON_GetObjectItemCaseSensitive(root, "perplexity");
        cJSON *all = cJSON_CreateArray();
        for (cJSON *l = ppl ? ppl->child : NULL; l; l = l->next) {
            if (lang && strcmp(l->string, lang) != 0) continue;
            cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "windows");
            int cnt = 0;
            for (cJSON *x = w ? w->child : NULL; x; x = x->next, cnt++) cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
            if (nl < MAX_LANGS && cnt > 0) {
                lnames[nl] = l->string;
                lcount[nl++] = cnt;
            }
        }
        cJSON_AddItemToObject(root, "__all", all);
        wins = all;
    } else if (root && cJSON_IsObject(root)) {
        wins = cJSON_GetObjectItemCaseSensitive(root, "windows");
    }
    if (!wins || !cJSON_IsArray(wins) || cJSON_GetArraySize(wins) == 0) {
        cJSON_Delete(root);
        return cli_usage(a, "--windows must hold a JSON array of id arrays");
    }
    ds8b_params *p = cli_session_params(a);
    if (!p) { cJSON_Delete(root); return 2; }
    ds8b_model *m = NULL, *bm = NULL;
    ds8b_session *s = NULL, *bs = NULL;
    int ret = 1, rc;
    int64_t maxlen = 0;
    for (cJSON *w = wins->child; w; w = w->next) if (cJSON_GetArraySize(w) > maxlen) maxlen = cJSON_GetArraySize(w);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, maxlen > 0 ? maxlen : 1);
    if (cli_load(a, path, &m)) goto out;
    if ((rc = ds8b_session_create(m, p, &s))) { cli_fail("creating the session", rc); goto out; }
    if (base_path) {
        if (cli_load(a, base_path, &bm)) goto out;
        if ((rc = ds8b_session_create(bm, p, &bs))) { cli_fail("creating the base session", rc); goto out; }
    }
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *lg = malloc((size_t)maxlen * (size_t)vocab * sizeof(float));
    float *blg = bm ? malloc((size_t)maxlen * (size_t)vocab * sizeof(float)) : NULL;
    double sum_nll = 0, sum_kl = 0, sum_base_nll = 0;
    int64_t n_kl = 0, n_agree = 0;
    int nw = 0;
    /* per language: nll, base nll, kl sums; kl and agreement counts */
    double l_nll[MAX_LANGS] = {0}, l_bnll[MAX_LANGS] = {0}, l_kl[MAX_LANGS] = {0};
    int64_t l_nkl[MAX_LANGS] = {0}, l_agree[MAX_LANGS] = {0};
    int cur_l = 0, left_in_l = nl ? lcount[0] : 0;
    for (cJSON *w = wins->child; w; w = w->next) {
        char *wj = cJSON_PrintUnformatted(w);
        size_t n;
        int32_t *ids = wj ? cli_parse_ids(wj, &n) : NULL;
        free(wj);
        if (!ids || n < 2) { free(ids); cli_usage(a, "each window needs at least 2 integer ids"); goto out2; }
        ds8b_session_reset(s);
        if ((rc = ds8b_eval(s, ids, n, lg))) { free(ids); cli_fail("evaluating", rc); goto out2; }
        if (bs) {
            /* the base is the float model: at the level avx512-bf16 (bf16
             * activations for BF16/F16/W4A16 weights) it runs one level
             * lower, with float activations (docs/quantization.md) */
            bool cap = ds8b__isa_bf16_act();
            int lvl = ds8b__isa_level();
            if (cap) ds8b__isa_force(2); /* avx512-vnni */
            ds8b_session_reset(bs);
            rc = ds8b_eval(bs, ids, n, blg);
            if (cap) ds8b__isa_force(lvl);
            if (rc) { free(ids); cli_fail("evaluating the base", rc); goto out2; }
        }
        double wn = 0, wbn = 0;
        while (nl && left_in_l == 0 && cur_l + 1 < nl) left_in_l = lcount[++cur_l];
        left_in_l--;
        for (size_t i = 0; i + 1 < n; i++) {
            const float *r = lg + i * (size_t)vocab;
            int64_t am, bam;
            double lz = log_z(r, vocab, &am);
            wn += lz - r[ids[i + 1]];
            if (bs) {
                const float *b = blg + i * (size_t)vocab;
                double blz = log_z(b, vocab, &bam), kl = 0;
                for (int64_t k = 0; k < vocab; k++) {
                    double lp = b[k] - blz, lq = r[k] - lz;
                    kl += exp(lp) * (lp - lq);
                }
                sum_kl += kl;
                n_kl++;
                n_agree += am == bam;
                l_kl[cur_l] += kl;
                l_nkl[cur_l]++;
                l_agree[cur_l] += am == bam;
                wbn += blz - b[ids[i + 1]];
            }
        }
        sum_nll += wn / (double)(n - 1);
        sum_base_nll += wbn / (double)(n - 1);
        l_nll[cur_l] += wn / (double)(n - 1);
        l_bnll[cur_l] += wbn / (double)(n - 1);
        nw++;
        free(ids);
    }
    double mean = sum_nll / nw;
    printf("{\"windows\": %d, \"mean_nll\": %.6f, \"ppl\": %.4f", nw, mean, exp(mean));
    if (bs) {
        double bmean = sum_base_nll / nw;
        printf(", \"base_mean_nll\": %.6f, \"base_ppl\": %.4f, \"ppl_change_pct\": %.3f, \"mean_kld\": %.6f, "
               "\"top1_agreement\": %.4f",
               bmean, exp(bmean), 100.0 * (exp(mean) / exp(bmean) - 1.0), sum_kl / (double)n_kl,
               (double)n_agree / (double)n_kl);
    }
    if (nl > 1) { /* a reference file of several languages: each one too */
        printf(", \"langs\": {");
        for (int l = 0; l < nl; l++) {
            printf("%s\"%s\": {\"windows\": %d, \"mean_nll\": %.6f", l ? ", " : "", lnames[l], lcount[l],
                   l_nll[l] / lcount[l]);
            if (bs)
                printf(", \"base_mean_nll\": %.6f, \"mean_kld\": %.6f, \"top1_agreement\": %.4f", l_bnll[l] / lcount[l],
                       l_kl[l] / (double)(l_nkl[l] ? l_nkl[l] : 1), (double)l_agree[l] / (double)(l_nkl[l] ? l_nkl[l] : 1));
            printf("}");
        }
        printf("}");
    }
    printf("}\n");
    ret = 0;
out2:
    free(lg);
    free(blg);
out:
    ds8b_params_free(p);
    ds8b_session_free(s);
    ds8b_session_free(bs);
    ds8b_model_free(m);
    ds8b_model_free(bm);
    cJSON_Delete(root);
    return ret;
}


int cmd_perplexity(const cli_args *a) { return perplexity(a, false); }
int cmd_kld(const cli_args *a) { return perplexity(a, true); }
