/* fuzz_chat_template.c -- compiles the input as a chat template and renders
 * it. Bytes after the first NUL, if any, are the messages as JSON (a fixed
 * conversation with tool calls and reasoning is used when they do not parse
 * as an array). Tight sandbox bounds keep each run fast. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_template.h"

static const char FIXED[] =
    "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"What is 2+2? {{ x }}\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nadd\\n</think>\\n\\n4\",\"reasoning_content\":null},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":"
    "{\"name\":\"calc\",\"arguments\":\"{\\\"x\\\": 1}\"}},{\"type\":\"function\",\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"y\":[1,2.5,true,null]}}}]},"
    "{\"role\":\"tool\",\"content\":\"<tool_response>5</tool_response>\"},"
    "{\"role\":\"user\",\"content\":\"  日本語 😀 \\t\"}]";

static const char EXTRA[] =
    "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"calc\",\"description\":\"adds\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}}}],"
    "\"enable_thinking\":false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    size_t tlen = size;
    const uint8_t *z = memchr(data, 0, size);
    cJSON *msgs = NULL;
    if (z) {
        tlen = (size_t)(z - data);
        size_t jn = size - tlen - 1;
        char *js = malloc(jn + 1);
        if (!js) return 0;
        memcpy(js, z + 1, jn);
        js[jn] = 0;
        msgs = cJSON_Parse(js);
        free(js);
        if (msgs && !cJSON_IsArray(msgs)) {
            cJSON_Delete(msgs);
            msgs = NULL;
        }
    }
    if (!msgs) msgs = cJSON_Parse(FIXED);
    ds8b__tmpl *t = NULL;
    ds8b__err e = {0};
    if (ds8b__tmpl_compile(src, tlen, &t, &e) == 0) {
        cJSON *extra = (size & 1) ? cJSON_Parse(EXTRA) : NULL;
        ds8b__tmpl_limits lim = {.max_output = 1 << 20, .max_memory = 16 << 20, .max_iterations = 20000, .max_depth = 32};
        char *out = NULL;
        size_t n = 0;
        int rc = ds8b__tmpl_render_ex(t, msgs, (size & 2) != 0, "<s>", "</s>", extra, &lim, &out, &n, &e);
        if (rc == 0 && (!out || strlen(out) > n)) abort(); /* the text must be NUL-terminated at n */
        ds8b__free(out);
        cJSON_Delete(extra);
        ds8b__tmpl_free(t);
    }
    cJSON_Delete(msgs);
    return 0;
}
