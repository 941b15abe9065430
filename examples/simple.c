/* simple.c -- load a model, generate text, free everything.
 * Build: cc simple.c $(pkg-config --cflags --libs ds8b)
 * Run:   ./simple MODEL_DIR_OR_GGUF "prompt" */
#include <ds8b.h>
#include <stdio.h>
#include <string.h>

static int print_piece(void *user, const char *piece, size_t len, int channel) {
    (void)user;
    (void)channel;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* nonzero would stop generation */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
        return 2;
    }
    ds8b_model *model = NULL;
    ds8b_session *session = NULL;
    ds8b_params *params = NULL;
    int rc = ds8b_model_load(argv[1], NULL, &model);
    if (rc == DS8B_OK) rc = ds8b_params_create(&params);
    if (rc == DS8B_OK) {
        ds8b_params_set_int(params, DS8B_PARAM_MAX_TOKENS, 48);
        ds8b_params_set_float(params, DS8B_PARAM_TEMPERATURE, 0.0); /* greedy */
        rc = ds8b_session_create(model, params, &session);
    }
    if (rc == DS8B_OK) {
        printf("%s", argv[2]);
        rc = ds8b_generate(session, argv[2], strlen(argv[2]), DS8B_GEN_ADD_SPECIAL, print_piece, NULL, NULL);
        printf("\n");
    }
    if (rc != DS8B_OK) fprintf(stderr, "error: %s (%s)\n", ds8b_errmsg(), ds8b_errstr(rc));
    ds8b_session_free(session);
    ds8b_params_free(params);
    ds8b_model_free(model);
    return rc == DS8B_OK ? 0 : 1;
}
