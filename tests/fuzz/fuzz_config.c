/* fuzz_config.c -- ds8b__hf_config_parse on arbitrary bytes; what it accepts
 * must satisfy the invariants later size computations rely on. */
#include "model/hparams.h"

#include <math.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds8b__hparams hp;
    ds8b__err e = {0};
    if (ds8b__hf_config_parse((const char *)data, size, "fuzz-config.json", &hp, &e) != DS8B_OK) {
        if (!e.msg[0]) __builtin_trap();
        return 0;
    }
    if (hp.arch != DS8B_ARCH_LLAMA && hp.arch != DS8B_ARCH_QWEN3) __builtin_trap();
    if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_head_kv <= 0 || hp.head_dim <= 0 ||
        hp.n_ff <= 0 || hp.n_vocab <= 0 || hp.n_ctx_train <= 0)
        __builtin_trap();
    if (hp.n_head % hp.n_head_kv || hp.head_dim % 2) __builtin_trap();
    if (!(hp.rms_eps > 0) || !(hp.rope_theta > 0) || !isfinite(hp.yarn_attn_scale)) __builtin_trap();
    if (hp.n_eos < 0 || hp.n_eos > DS8B_MAX_EOS) __builtin_trap();
    for (int i = 0; i < hp.n_eos; i++)
        if (hp.eos[i] < 0 || hp.eos[i] >= hp.n_vocab) __builtin_trap();
    if (hp.bos < -1 || hp.bos >= hp.n_vocab) __builtin_trap();
    if (hp.rope_type == DS8B_ROPE_LLAMA3 && !(hp.rope_high_freq > hp.rope_low_freq)) __builtin_trap();
    return 0;
}
