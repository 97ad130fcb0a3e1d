/* SHA-256 (FIPS 180-4): the hash behind request cache keys. One-shot and incremental. */
#ifndef MT_CORE_SHA256_H
#define MT_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t n_buf; /* bytes waiting in buf */
} mt_sha256_ctx;

void mt_sha256_init(mt_sha256_ctx *c);
void mt_sha256_update(mt_sha256_ctx *c, const void *data, size_t len);
void mt_sha256_final(mt_sha256_ctx *c, uint8_t out[32]);

void mt_sha256(const void *data, size_t len, uint8_t out[32]);
/* Lower-case hex digest, NUL-terminated. */
void mt_sha256_hex(const void *data, size_t len, char out[65]);
/* Lower-case hex of a 32-byte digest. */
void mt_sha256_to_hex(const uint8_t digest[32], char out[65]);

#endif
