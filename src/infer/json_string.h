/* The byte-level automaton of a JSON string's body (between the quotes), shared by the
 * grammar matcher and the token index so both judge a byte the same way.
 *
 * It accepts exactly: printable ASCII except '"' and '\', well-formed UTF-8 (no overlong
 * forms, no UTF-16 surrogates, nothing above U+10FFFF), and the escapes \" \\ \/ \b \f \n
 * \r \t \uXXXX, where \uXXXX may be neither a surrogate (D800-DFFF: a lone half does not
 * decode) nor \u0000 (a C string cannot hold it). Raw bytes below 0x20 are refused, as
 * JSON requires. */
#ifndef MT_INFER_JSON_STRING_H
#define MT_INFER_JSON_STRING_H

#include <stdint.h>

enum {
    MT_JS_REJECT = -1,
    MT_JS_CHAR = 0, /* between characters: the only state where '"' closes the string */
    MT_JS_U1,       /* one continuation byte 80-BF left */
    MT_JS_U2,
    MT_JS_U3,
    MT_JS_U2_E0, /* after E0: A0-BF, then one more */
    MT_JS_U2_ED, /* after ED: 80-9F (no surrogates), then one more */
    MT_JS_U3_F0, /* after F0: 90-BF, then two more */
    MT_JS_U3_F4, /* after F4: 80-8F (<= U+10FFFF), then two more */
    MT_JS_ESC,   /* after '\' */
    MT_JS_HEX1,  /* \u, no digit yet */
    MT_JS_HEX2,
    MT_JS_HEX2_D, /* \uD: 0-7 only, so no surrogate */
    MT_JS_HEX2_0, /* \u0 */
    MT_JS_HEX3,
    MT_JS_HEX3_00, /* \u00 */
    MT_JS_HEX4,
    MT_JS_HEX4_000 /* \u000: anything but 0 */
};

static inline int mt_js_is_hex(uint8_t b) {
    return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

/* Next state after byte b (never '"' in MT_JS_CHAR: the caller closes the string), or
 * MT_JS_REJECT. *starts is set when b begins a new code point (counted by minLength and
 * maxLength as Python counts str length: an escape is one code point). */
static inline int mt_js_step(int state, uint8_t b, int *starts) {
    *starts = 0;
    switch (state) {
    case MT_JS_CHAR:
        if (b < 0x20 || b == '"') return MT_JS_REJECT;
        *starts = 1;
        if (b == '\\') return MT_JS_ESC;
        if (b < 0x80) return MT_JS_CHAR;
        if (b >= 0xC2 && b <= 0xDF) return MT_JS_U1;
        if (b == 0xE0) return MT_JS_U2_E0;
        if (b == 0xED) return MT_JS_U2_ED;
        if (b >= 0xE1 && b <= 0xEF) return MT_JS_U2;
        if (b == 0xF0) return MT_JS_U3_F0;
        if (b >= 0xF1 && b <= 0xF3) return MT_JS_U3;
        if (b == 0xF4) return MT_JS_U3_F4;
        *starts = 0;
        return MT_JS_REJECT;
    case MT_JS_U1:
        return b >= 0x80 && b <= 0xBF ? MT_JS_CHAR : MT_JS_REJECT;
    case MT_JS_U2:
        return b >= 0x80 && b <= 0xBF ? MT_JS_U1 : MT_JS_REJECT;
    case MT_JS_U3:
        return b >= 0x80 && b <= 0xBF ? MT_JS_U2 : MT_JS_REJECT;
    case MT_JS_U2_E0:
        return b >= 0xA0 && b <= 0xBF ? MT_JS_U1 : MT_JS_REJECT;
    case MT_JS_U2_ED:
        return b >= 0x80 && b <= 0x9F ? MT_JS_U1 : MT_JS_REJECT;
    case MT_JS_U3_F0:
        return b >= 0x90 && b <= 0xBF ? MT_JS_U2 : MT_JS_REJECT;
    case MT_JS_U3_F4:
        return b >= 0x80 && b <= 0x8F ? MT_JS_U2 : MT_JS_REJECT;
    case MT_JS_ESC:
        switch (b) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            return MT_JS_CHAR;
        case 'u':
            return MT_JS_HEX1;
        default:
            return MT_JS_REJECT;
        }
    case MT_JS_HEX1:
        if (b == 'D' || b == 'd') return MT_JS_HEX2_D;
        if (b == '0') return MT_JS_HEX2_0;
        return mt_js_is_hex(b) ? MT_JS_HEX2 : MT_JS_REJECT;
    case MT_JS_HEX2:
        return mt_js_is_hex(b) ? MT_JS_HEX3 : MT_JS_REJECT;
    case MT_JS_HEX2_D:
        return b >= '0' && b <= '7' ? MT_JS_HEX3 : MT_JS_REJECT;
    case MT_JS_HEX2_0:
        if (b == '0') return MT_JS_HEX3_00;
        return mt_js_is_hex(b) ? MT_JS_HEX3 : MT_JS_REJECT;
    case MT_JS_HEX3:
        return mt_js_is_hex(b) ? MT_JS_HEX4 : MT_JS_REJECT;
    case MT_JS_HEX3_00:
        if (b == '0') return MT_JS_HEX4_000;
        return mt_js_is_hex(b) ? MT_JS_HEX4 : MT_JS_REJECT;
    case MT_JS_HEX4:
        return mt_js_is_hex(b) ? MT_JS_CHAR : MT_JS_REJECT;
    case MT_JS_HEX4_000:
        return mt_js_is_hex(b) && b != '0' ? MT_JS_CHAR : MT_JS_REJECT;
    default:
        return MT_JS_REJECT;
    }
}

#endif
