/* A growable array of owned strings: the lines of an export built one record at a time. */
#ifndef MT_CORE_LINES_H
#define MT_CORE_LINES_H

#include "core/status.h"

typedef struct {
    char **v;
    int n, cap;
} mt_lines;

/* Appends s, a malloc'ed string the array owns from now on (freed here when appending
 * fails); a NULL s stands for an allocation that failed and gives MT_ERR_NOMEM. */
mt_status mt_lines_push(mt_lines *l, char *s);
void mt_lines_free(mt_lines *l);

#endif
