/*
 * toolcall.h -- tool calls in a model's output, by template family.
 *
 * Qwen3 (and Hermes-style ChatML templates):
 *     <tool_call>
 *     {"name": "NAME", "arguments": {...}}
 *     </tool_call>
 * one block per call, whitespace between blocks.
 * DeepSeek V3 / R1:
 *     <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
 *     ```json
 *     {...}
 *     ```<｜tool▁call▁end｜>
 *     <｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>
 * The generator streams this markup on DS8B_CHANNEL_TOOL_CALL (generate.c);
 * ds8b__tc_parse turns the text of that channel into calls.
 */
#ifndef DS8B_TOOLCALL_H
#define DS8B_TOOLCALL_H

#include "internal.h"
#include <cjson/cJSON.h>

#define DS8B__TC_QWEN_OPEN        "<tool_call>"
#define DS8B__TC_QWEN_CLOSE       "</tool_call>"
#define DS8B__TC_DS_CALLS_BEGIN   "<｜tool▁calls▁begin｜>"
#define DS8B__TC_DS_CALLS_END     "<｜tool▁calls▁end｜>"
#define DS8B__TC_DS_CALL_BEGIN    "<｜tool▁call▁begin｜>"
#define DS8B__TC_DS_CALL_END      "<｜tool▁call▁end｜>"
#define DS8B__TC_DS_SEP           "<｜tool▁sep｜>"

enum { DS8B__TC_NONE = 0, DS8B__TC_QWEN = 1, DS8B__TC_DEEPSEEK = 2 };

/* The tool-call family of a chat template source (NULL: none): Qwen if it
 * renders <tool_call>, DeepSeek if it renders <｜tool▁calls▁begin｜>. */
int ds8b__tc_family(const char *tmpl_src);

/* Parses the tool-call text of one reply (len bytes, markup included).
 * Each well-formed call is appended to calls (a cJSON array) as
 * {"type": "function", "function": {"name": NAME, "arguments": TEXT}},
 * TEXT being the JSON object exactly as the model wrote it (a string, as
 * every template accepts). The raw text of each malformed call (no or
 * empty name, arguments not a JSON object, no closing marker) is appended
 * to *bad (a heap string of *nbad bytes, NULL when none; free with
 * ds8b__free). Returns DS8B_OK, or DS8B_E_NOMEM. */
int ds8b__tc_parse(int family, const char *text, size_t len, cJSON *calls, char **bad, size_t *nbad,
                   ds8b__err *e);

#endif /* DS8B_TOOLCALL_H */
