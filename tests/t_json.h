/* t_json.h -- reading the reference JSON files in tests. */
#ifndef DS8B_T_JSON_H
#define DS8B_T_JSON_H
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Parses a whole JSON file; NULL if it cannot be read or parsed. */
static inline cJSON *t_load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

/* A JSON array of numbers as a malloc'd array of token ids. */
static inline int32_t *t_ids_of(const cJSON *arr, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc(*n * sizeof *ids + 4);
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next) ids[i++] = (int32_t)it->valuedouble;
    return ids;
}
#endif
