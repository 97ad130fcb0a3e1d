/* A flat YAML configuration file: one mapping of keys to scalars or to lists of scalars
 * (a list reads as its items joined by commas), as `meteor train --config` takes. Nested
 * mappings, anchors and multiple documents are refused with the file and line. */
#ifndef MT_IO_YAML_FLAT_H
#define MT_IO_YAML_FLAT_H

#include "core/status.h"

/* Called once per key in file order; value is NULL for an empty value (`key:`). A
 * non-zero return stops the reading with that status. */
typedef mt_status (*mt_yaml_kv_fn)(void *user, const char *key, const char *value, int line);

mt_status mt_yaml_read_flat(const char *path, mt_yaml_kv_fn fn, void *user);

#endif
