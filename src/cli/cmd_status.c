#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "store/store.h"

int mt_cmd_status(int argc, char **argv) {
    const char *run = NULL;
    /* The run directory may come first as a plain argument: `meteor status DIR`. */
    if (argc > 1 && argv[1][0] != '-') {
        run = argv[1];
        argv++;
        argc--;
    }
    const mt_opt opts[] = {
        {"--run", NULL, MT_OPT_STR, &run, "DIR", "the run directory"},
    };
    int help = 0;
    if (mt_parse_opts(opts, 1, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor status RUN_DIR",
                      "Summarise a run: questions and splits, items done and failed per phase "
                      "(with errors),\nexpert requests, retries, tokens and cost.",
                      opts, 1);
        return 0;
    }
    if (!run) {
        mt_fail(MT_ERR_ARG, "which run? usage: meteor status RUN_DIR");
        return mt_report_error();
    }
    char db[4096];
    struct stat sb;
    snprintf(db, sizeof db, "%s/run.db", run);
    if (stat(db, &sb)) {
        mt_fail(MT_ERR_IO, "%s is not a run directory (no run.db)", run);
        return mt_report_error();
    }
    mt_store *s = NULL;
    mt_status st = mt_store_open(db, &s);
    if (!st) {
        printf("run %s\n", run);
        st = mt_store_print_status(s, stdout);
    }
    mt_store_close(s);
    return st ? mt_report_error() : 0;
}
