/* Deterministic crash points for crash-safety tests. When the environment variable
 * METEOR_FAULT_KILL is "NAME:N", the N-th time the program passes the point called NAME
 * it kills itself with SIGKILL, exactly as `kill -9` would, but at a known place rather
 * than at a moment that depends on timing. Unset, a point costs one string compare. */
#ifndef MT_CORE_FAULT_H
#define MT_CORE_FAULT_H

void mt_fault_point(const char *name);

#endif
