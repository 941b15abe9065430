/*
 * tmpl_builtin.c -- chat templates for model files that carry none. Each is
 * Jinja source run by the interpreter in tmpl_eval.c.
 */
#include "chat/chat_template.h"

/* DeepSeek V3 / R1 format, rendering exactly like the chat_template shipped
 * in the DeepSeek tokenizer_config.json files: all system prompts joined by a
 * blank line after BOS, <｜User｜>/<｜Assistant｜> turns, each assistant turn
 * closed by <｜end▁of▁sentence｜>, DeepSeek tool-call and tool-output blocks. */
static const char DS8B_TMPL_DEEPSEEK_R1[] =
    "{%- set st = namespace(system='', have_system=false, in_tools=false, first_output=true, called=false) -%}\n"
    "{%- for m in messages if m['role'] == 'system' -%}\n"
    "  {%- set st.system = st.system + ('\\n\\n' if st.have_system else '') + m['content'] -%}\n"
    "  {%- set st.have_system = true -%}\n"
    "{%- endfor -%}\n"
    "{{- bos_token -}}{{- st.system -}}\n"
    "{%- for m in messages -%}\n"
    "  {%- if m['role'] == 'user' -%}\n"
    "    {%- set st.in_tools = false -%}\n"
    "    {{- '<｜User｜>' + m['content'] -}}\n"
    "  {%- elif m['role'] == 'assistant' and m['content'] is none -%}\n"
    "    {%- set st.in_tools = false -%}\n"
    "    {%- for call in m['tool_calls'] -%}\n"
    "      {%- set body = call['type'] + '<｜tool▁sep｜>' + call['function']['name'] + '\\n```json\\n'"
    " + call['function']['arguments'] + '\\n```<｜tool▁call▁end｜>' -%}\n"
    "      {%- if st.called -%}\n"
    "        {{- '\\n<｜tool▁call▁begin｜>' + body + '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' -}}\n"
    "      {%- else -%}\n"
    "        {{- '<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + body -}}\n"
    "        {%- set st.called = true -%}\n"
    "      {%- endif -%}\n"
    "    {%- endfor -%}\n"
    "  {%- elif m['role'] == 'assistant' -%}\n"
    "    {{- ('<｜tool▁outputs▁end｜>' if st.in_tools else '<｜Assistant｜>') + m['content'] + '<｜end▁of▁sentence｜>' -}}\n"
    "    {%- set st.in_tools = false -%}\n"
    "  {%- elif m['role'] == 'tool' -%}\n"
    "    {%- set st.in_tools = true -%}\n"
    "    {{- ('<｜tool▁outputs▁begin｜>' if st.first_output else '\\n') + '<｜tool▁output▁begin｜>' + m['content']"
    " + '<｜tool▁output▁end｜>' -}}\n"
    "    {%- set st.first_output = false -%}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if st.in_tools -%}{{- '<｜tool▁outputs▁end｜>' -}}{%- endif -%}\n"
    "{%- if add_generation_prompt and not st.in_tools -%}{{- '<｜Assistant｜>' -}}{%- endif -%}\n";

/* The DeepSeek-R1 distill variant: reasoning before </think> is dropped from
 * every assistant turn of the history and the generation prompt opens the
 * model's <think> block. */
static const char DS8B_TMPL_DEEPSEEK_R1_DISTILL[] =
    "{%- set st = namespace(system='', have_system=false) -%}\n"
    "{%- for m in messages if m['role'] == 'system' -%}\n"
    "  {%- set st.system = st.system + ('\\n\\n' if st.have_system else '') + m['content'] -%}\n"
    "  {%- set st.have_system = true -%}\n"
    "{%- endfor -%}\n"
    "{{- bos_token -}}{{- st.system -}}\n"
    "{%- for m in messages -%}\n"
    "  {%- if m['role'] == 'user' -%}\n"
    "    {{- '<｜User｜>' + m['content'] -}}\n"
    "  {%- elif m['role'] == 'assistant' -%}\n"
    "    {%- set text = m['content'] if m['content'] is string else '' -%}\n"
    "    {%- if '</think>' in text -%}{%- set text = text.split('</think>')[-1] -%}{%- endif -%}\n"
    "    {{- '<｜Assistant｜>' + text + '<｜end▁of▁sentence｜>' -}}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<｜Assistant｜><think>\\n' -}}{%- endif -%}\n";

/* Llama 3: header-delimited turns, content trimmed, BOS before the first. */
static const char DS8B_TMPL_LLAMA3[] =
    "{%- for m in messages -%}\n"
    "  {%- if loop.first -%}{{- bos_token -}}{%- endif -%}\n"
    "  {{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}\n";

/* ChatML: <|im_start|>role\ncontent<|im_end|>\n per message. */
static const char DS8B_TMPL_CHATML[] =
    "{%- for m in messages -%}\n"
    "  {{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

const char *ds8b__tmpl_builtin(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "deepseek-r1")) return DS8B_TMPL_DEEPSEEK_R1;
    if (!strcmp(name, "deepseek-r1-distill")) return DS8B_TMPL_DEEPSEEK_R1_DISTILL;
    if (!strcmp(name, "llama3")) return DS8B_TMPL_LLAMA3;
    if (!strcmp(name, "chatml")) return DS8B_TMPL_CHATML;
    return NULL;
}
