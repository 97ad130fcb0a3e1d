/* The GPT-2 byte alphabet (every byte spelled as a printable character so that byte-level
 * vocabularies are text) and the UTF-8 helpers encoding and decoding share. */
#include "tokenizer/tok_internal.h"

static int printable_as_is(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

static uint32_t byte_code_point(uint8_t b) {
    if (printable_as_is(b)) return b;
    /* The remaining bytes take code points 256, 257, ... in byte order. */
    uint32_t k = 0;
    for (unsigned i = 0; i < b; i++) k += !printable_as_is(i);
    return 256 + k;
}

static int encode_utf8(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int mt_byte_to_unicode(uint8_t b, char out[4]) {
    return encode_utf8(byte_code_point(b), out);
}

int mt_unicode_to_byte(uint32_t cp) {
    if (cp < 256) return printable_as_is(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1; /* 68 bytes are not printable as is */
    uint32_t k = cp - 256;
    for (unsigned b = 0; b < 256; b++) {
        if (printable_as_is(b)) continue;
        if (k-- == 0) return (int)b;
    }
    return -1;
}

int mt_utf8_check(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    int need;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return -1;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t lim_lo = i == 1 ? lo : 0x80, lim_hi = i == 1 ? hi : 0xbf;
        if (s[i] < lim_lo || s[i] > lim_hi) return -i;
    }
    return need;
}

int mt_utf8_next(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    int k = mt_utf8_check(u, n);
    if (k <= 0) {
        *cp = u[0];
        return 1;
    }
    if (k == 1)
        *cp = u[0];
    else if (k == 2)
        *cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
    else if (k == 3)
        *cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
    else
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
              ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    return k;
}

size_t mt_utf8_lossy(const uint8_t *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int k = mt_utf8_check(s + i, n - i);
        if (k > 0) {
            for (int j = 0; j < k; j++) out[o++] = (char)s[i + j];
            i += (size_t)k;
            continue;
        }
        /* A truncated tail counts as one invalid subpart, like a bad one. */
        size_t bad = k < 0 ? (size_t)-k : n - i;
        out[o++] = (char)0xef;
        out[o++] = (char)0xbf;
        out[o++] = (char)0xbd;
        i += bad;
    }
    return o;
}
