#include "core/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long passes;

void mt_fault_point(const char *name) {
    const char *spec = getenv("METEOR_FAULT_KILL");
    if (!spec) return;
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) != strlen(name) || strncmp(spec, name, strlen(name)))
        return;
    if (++passes != atol(colon + 1)) return;
    fprintf(stderr, "meteor: METEOR_FAULT_KILL: killing myself at %s #%ld\n", name, passes);
    fflush(stderr);
    kill(getpid(), SIGKILL);
    pause();
}
