/* fuzz_toolcall.c -- the tool-call parser on model output. The first byte
 * picks the family (odd: Qwen3 <tool_call>, even: DeepSeek), the rest is
 * the tool-channel text. Every call returned must have a non-empty name and
 * arguments that parse as a JSON object; the malformed text handed back is
 * never longer than the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int family = (data[0] & 1) ? DS8B__TC_QWEN : DS8B__TC_DEEPSEEK;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    cJSON *calls = cJSON_CreateArray();
    if (!calls) return 0;
    char *bad = NULL;
    size_t nbad = 0;
    ds8b__err e = {0};
    if (ds8b__tc_parse(family, text, len, calls, &bad, &nbad, &e) == 0) {
        if (nbad > len || (nbad && (!bad || strlen(bad) > nbad))) abort();
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
            const cJSON *ar = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
            if (!cJSON_IsString(nm) || !nm->valuestring[0] || !cJSON_IsString(ar)) abort();
            cJSON *j = cJSON_Parse(ar->valuestring);
            if (!cJSON_IsObject(j)) abort();
            cJSON_Delete(j);
        }
    }
    ds8b__free(bad);
    cJSON_Delete(calls);
    return 0;
}
