/* tok_gguf_weak.c -- fallback for ds8b__gguf_load_tokenizer until the GGUF
 * reader provides it. Kept in its own object so that, in the static
 * library, a strong definition elsewhere is the one the linker pulls in. */
#include "tokenizer/tokenizer.h"

__attribute__((weak)) int ds8b__gguf_load_tokenizer(const char *path, ds8b_tokenizer **out,
                                                    ds8b__err *e) {
    if (out) *out = NULL;
    return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: GGUF tokenizers are not supported by this build",
                        path ? path : "(null)");
}
