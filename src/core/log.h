/* Diagnostics to stderr; verbosity is set once by the CLI. */
#ifndef MT_CORE_LOG_H
#define MT_CORE_LOG_H

typedef enum { MT_LOG_ERROR = 0, MT_LOG_WARN, MT_LOG_INFO, MT_LOG_DEBUG } mt_log_level;

void mt_log_set_level(mt_log_level level);
mt_log_level mt_log_get_level(void);
void mt_log(mt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define MT_WARN(...) mt_log(MT_LOG_WARN, __VA_ARGS__)
#define MT_INFO(...) mt_log(MT_LOG_INFO, __VA_ARGS__)
#define MT_DEBUG(...) mt_log(MT_LOG_DEBUG, __VA_ARGS__)

#endif
