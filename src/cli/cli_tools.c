/* cli_tools.c -- the ds8b subcommands beyond the core ones. */
#include "cli.h"

#include <string.h>

int cli_dispatch_extra(const char *cmd, int argc, char **argv) {
    (void)cmd; (void)argc; (void)argv;
    return -1;
}

void cli_usage_extra(void) {}

void cli_info_extra(const ds8b_model *m) { (void)m; }
