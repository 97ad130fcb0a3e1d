#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/status_print.h"
#include "store/store.h"

#define TEXT_OF(x) #x
#define TEXT_OF_VALUE(x) TEXT_OF(x)
#define LISTED TEXT_OF_VALUE(MT_STORE_STATUS_FAILED_LISTED)

int mt_cmd_status(int argc, char **argv) {
    const char *run = NULL;
    /* The run directory may come first as a plain argument: `meteor status DIR`. */
    if (argc > 1 && argv[1][0] != '-') {
        run = argv[1];
        argv++;
        argc--;
    }
    int json = 0;
    const mt_opt opts[] = {
        {"--run", NULL, MT_OPT_STR, &run, "DIR", "the run directory"},
        {"--json", NULL, MT_OPT_FLAG, &json, NULL,
         "print the summary as one JSON object on stdout (keys above)"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int help = 0;
    if (mt_parse_opts(opts, n_opts, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(
            stdout, "meteor status RUN_DIR [--json]",
            "Summarise a run: questions and splits, items done and failed per phase "
            "(with errors),\nexpert requests, retries, tokens and cost, the latest metrics.\n\n"
            "--json prints the same data as one line:\n"
            "  {\"path\": run.db's path,\n"
            "   \"questions\": {\"total\", \"splits\": {name: count, \"unsplit\" for none "
            "drawn yet}},\n"
            "   \"items\": [{\"phase\", \"stage\", \"done\", \"failed\"}] (order of first "
            "write),\n"
            "   \"failures\": {\"total\", \"first\": [{\"phase\", \"stage\", \"qid\", "
            "\"attempts\", \"error\"}]}\n"
            "     (the first " LISTED " failed items, each error whole),\n"
            "   \"usage\": {\"phases\": [{\"phase\", \"requests\", \"attempts\", "
            "\"failed_attempts\", \"prompt_tokens\",\n"
            "             \"completion_tokens\", \"cost\"}], \"total\": {the same without "
            "\"phase\"}},\n"
            "   \"metrics\": [{\"phase\", \"name\", \"value\"}] (latest values; NaN is "
            "null)}",
            opts, n_opts);
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
    mt_store_status summary;
    mt_status st = mt_store_open(db, &s);
    if (!st) st = mt_store_status_read(s, &summary);
    mt_store_close(s);
    if (st) return mt_report_error();
    if (json) {
        st = mt_status_print_json(stdout, &summary);
    } else {
        printf("run %s\n", run);
        st = mt_status_print_text(stdout, &summary);
    }
    mt_store_status_free(&summary);
    return st ? mt_report_error() : 0;
}
