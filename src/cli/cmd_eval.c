/*
 * cmd_eval.c -- ds8b eval (logits of an id sequence to a file), ds8b
 * perplexity and ds8b kld (mean NLL over windows, against a base model).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* eval and perplexity                                                 */
/* ================================================================== */
int cmd_eval(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m"), *ids_json = cli_opt(argc, argv, "--ids");
    const char *out_path = cli_opt(argc, argv, "--logits-out");
    if (!path || !ids_json || !out_path) return cli_usage("eval needs -m PATH --ids JSON --logits-out FILE");
    size_t n;
    int32_t *ids = cli_parse_ids(ids_json, &n);
    if (!ids || n == 0) { free(ids); return cli_usage("--ids must be a non-empty JSON array of integers"); }
    ds8b_params *p = cli_session_params(argc, argv);
    ds8b_model *m;
    if (!p) { free(ids); return 2; }
    if ((int64_t)n > 4096) ds8b_params_set_int(p, DS8B_PARAM_N_CTX, (int64_t)n);
    if (cli_load(argc, argv, path, &m)) { free(ids); ds8b_params_free(p); return 1; }
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

/* Mean NLL of each window; optional KL divergence and top-1 agreement
 * against a base model evaluated on the same windows. */
static int perplexity(int argc, char **argv, bool kld) {
    const char *path = cli_opt(argc, argv, "-m"), *wpath = cli_opt(argc, argv, "--windows");
    const char *base_path = cli_opt(argc, argv, "--base");
    if (!path || !wpath) return cli_usage("perplexity needs -m PATH --windows FILE");
    if (kld && !base_path) return cli_usage("kld needs --base FLOAT_MODEL");
    FILE *wf = fopen(wpath, "rb");
    if (!wf) { fprintf(stderr, "ds8b: cannot open %s: %s\n", wpath, strerror(errno)); return 1; }
    size_t len;
    char *js = cli_read_all(wf, &len);
    fclose(wf);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    free(js);
    /* accept a bare array of windows, an object with "windows", or a
     * reference file with "perplexity": {LANG: {"windows": ...}} (--lang
     * picks one language; default: all of them) */
    cJSON *wins = root;
    const char *lang = cli_opt(argc, argv, "--lang");
    if (root && cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "perplexity")) {
        cJSON *ppl = cJSON_GetObjectItemCaseSensitive(root, "perplexity");
        cJSON *all = cJSON_CreateArray();
        for (cJSON *l = ppl ? ppl->child : NULL; l; l = l->next) {
            if (lang && strcmp(l->string, lang) != 0) continue;
            cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "windows");
            for (cJSON *x = w ? w->child : NULL; x; x = x->next) cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
        }
        cJSON_AddItemToObject(root, "__all", all);
        wins = all;
    } else if (root && cJSON_IsObject(root)) {
        wins = cJSON_GetObjectItemCaseSensitive(root, "windows");
    }
    if (!wins || !cJSON_IsArray(wins) || cJSON_GetArraySize(wins) == 0) {
        cJSON_Delete(root);
        return cli_usage("--windows must hold a JSON array of id arrays");
    }
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) { cJSON_Delete(root); return 2; }
    ds8b_model *m = NULL, *bm = NULL;
    ds8b_session *s = NULL, *bs = NULL;
    int ret = 1, rc;
    int64_t maxlen = 0;
    for (cJSON *w = wins->child; w; w = w->next) if (cJSON_GetArraySize(w) > maxlen) maxlen = cJSON_GetArraySize(w);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, maxlen > 0 ? maxlen : 1);
    if (cli_load(argc, argv, path, &m)) goto out;
    if ((rc = ds8b_session_create(m, p, &s))) { cli_fail("creating the session", rc); goto out; }
    if (base_path) {
        if (cli_load(argc, argv, base_path, &bm)) goto out;
        if ((rc = ds8b_session_create(bm, p, &bs))) { cli_fail("creating the base session", rc); goto out; }
    }
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *lg = malloc((size_t)maxlen * (size_t)vocab * sizeof(float));
    float *blg = bm ? malloc((size_t)maxlen * (size_t)vocab * sizeof(float)) : NULL;
    double sum_nll = 0, sum_kl = 0, sum_base_nll = 0;
    int64_t n_kl = 0, n_agree = 0;
    int nw = 0;
    for (cJSON *w = wins->child; w; w = w->next) {
        char *wj = cJSON_PrintUnformatted(w);
        size_t n;
        int32_t *ids = wj ? cli_parse_ids(wj, &n) : NULL;
        free(wj);
        if (!ids || n < 2) { free(ids); cli_usage("each window needs at least 2 integer ids"); goto out2; }
        ds8b_session_reset(s);
        if ((rc = ds8b_eval(s, ids, n, lg))) { free(ids); cli_fail("evaluating", rc); goto out2; }
        if (bs) {
            ds8b_session_reset(bs);
            if ((rc = ds8b_eval(bs, ids, n, blg))) { free(ids); cli_fail("evaluating the base", rc); goto out2; }
        }
        double wn = 0, wbn = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const float *r = lg + i * (size_t)vocab;
            double mx = r[0];
            int64_t am = 0;
            for (int64_t k = 1; k < vocab; k++) if (r[k] > mx) { mx = r[k]; am = k; }
            double z = 0;
            for (int64_t k = 0; k < vocab; k++) z += exp(r[k] - mx);
            double lz = mx + log(z);
            wn += lz - r[ids[i + 1]];
            if (bs) {
                const float *b = blg + i * (size_t)vocab;
                double bmx = b[0];
                int64_t bam = 0;
                for (int64_t k = 1; k < vocab; k++) if (b[k] > bmx) { bmx = b[k]; bam = k; }
                double bz = 0;
                for (int64_t k = 0; k < vocab; k++) bz += exp(b[k] - bmx);
                double blz = bmx + log(bz), kl = 0;
                for (int64_t k = 0; k < vocab; k++) {
                    double lp = b[k] - blz, lq = r[k] - lz;
                    kl += exp(lp) * (lp - lq);
                }
                sum_kl += kl;
                n_kl++;
                n_agree += am == bam;
                wbn += blz - b[ids[i + 1]];
            }
        }
        sum_nll += wn / (double)(n - 1);
        sum_base_nll += wbn / (double)(n - 1);
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


int cmd_perplexity(int argc, char **argv) { return perplexity(argc, argv, false); }
int cmd_kld(int argc, char **argv) { return perplexity(argc, argv, true); }
