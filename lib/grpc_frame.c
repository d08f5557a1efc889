/* SPDX-License-Identifier: MIT */
/*
 * gRPC-over-HTTP/2 wire details (PROTOCOL-HTTP2.md): the length prefix, grpc-timeout,
 * grpc-message percent-encoding, base64 for binary metadata, metadata key rules.
 * Pure functions: no allocation, no I/O, safe from any thread.
 */
#include "fsr/grpc_frame.h"

#include <string.h>

#include "fsr/metadata.h"
#include "fsr/status.h"

/* ---- length prefix ------------------------------------------------------------------ */

void fsr_grpc_prefix_write(uint8_t out[FSR_GRPC_PREFIX_LEN], uint32_t len)
{
    out[0] = 0; /* we never compress */
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

int fsr_grpc_prefix_parse(const uint8_t in[FSR_GRPC_PREFIX_LEN], int *compressed, uint32_t *len)
{
    if (in[0] > 1)
        return FSR_E_PROTOCOL;
    *compressed = in[0];
    *len = (uint32_t)in[1] << 24 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 8 | in[4];
    return 0;
}

/* ---- grpc-timeout ------------------------------------------------------------------- */

/*
 * Timeout → TimeoutValue TimeoutUnit; TimeoutValue → {positive integer as ASCII string of at
 * most 8 digits}; TimeoutUnit → Hour "H" / Minute "M" / Second "S" / Millisecond "m" /
 * Microsecond "u" / Nanosecond "n".  Eight digits keep every value far below INT64_MAX
 * microseconds (99999999 H is about 3.6e17 us), so no step here can overflow.
 */
#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_SATURATE   (INT64_MAX / 2)

int fsr_grpc_timeout_parse(const char *s, size_t len, int64_t *us)
{
    if (s == NULL || len < 2 || len > TIMEOUT_MAX_DIGITS + 1)
        return FSR_E_PROTOCOL;
    int64_t v = 0;
    for (size_t i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FSR_E_PROTOCOL;
        v = v * 10 + (s[i] - '0');
    }
    int64_t r;
    switch (s[len - 1]) {
    case 'H':
        r = v * 3600 * 1000000;
        break;
    case 'M':
        r = v * 60 * 1000000;
        break;
    case 'S':
        r = v * 1000000;
        break;
    case 'm':
        r = v * 1000;
        break;
    case 'u':
        r = v;
        break;
    case 'n':
        r = (v + 999) / 1000; /* round up: never shorten a deadline */
        break;
    default:
        return FSR_E_PROTOCOL;
    }
    *us = r > TIMEOUT_SATURATE ? TIMEOUT_SATURATE : r;
    return 0;
}

size_t fsr_grpc_timeout_format(int64_t us, char out[10])
{
    /* Finest unit first, so the peer sees the most precise value that fits in 8 digits. */
    static const struct {
        int64_t us_per_unit;
        char unit;
    } units[] = {
        { 1, 'u' }, { 1000, 'm' }, { 1000000, 'S' }, { 60000000, 'M' }, { 3600000000, 'H' },
    };
    const int64_t max_value = 99999999;
    if (us <= 0) {
        memcpy(out, "0n", 3); /* already expired: what grpc-go sends too */
        return 2;
    }
    int64_t v = 0;
    char unit = 'H';
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        v = us / units[i].us_per_unit + (us % units[i].us_per_unit != 0);
        unit = units[i].unit;
        if (v <= max_value)
            break;
    }
    if (v > max_value)
        v = max_value; /* > 11 years: clamp */
    char digits[TIMEOUT_MAX_DIGITS];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = unit;
    out[n + 1] = '\0';
    return n + 1;
}

/* ---- grpc-message percent-encoding -------------------------------------------------- */

static const char hex_upper[] = "0123456789ABCDEF";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t fsr_percent_encode(const char *in, size_t len, char *out, size_t cap)
{
    /*
     * Like snprintf: the return value is the full encoded length whatever |cap| is.  Output
     * stops at the last whole character (never half an escape) that fits.
     */
    size_t need = 0, w = 0;
    int full = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int plain = c >= 0x20 && c <= 0x7e && c != '%';
        size_t n = plain ? 1 : 3;
        need += n;
        if (full || w + n > cap) {
            full = 1;
            continue;
        }
        if (plain) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = hex_upper[c >> 4];
            out[w++] = hex_upper[c & 0xf];
        }
    }
    if (w < cap)
        out[w] = '\0';
    return need;
}

size_t fsr_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
    /*
     * "When decoding invalid values, implementations MUST NOT error or throw away the
     * message": a '%' not followed by two hex digits is copied as it is.
     */
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%' && i + 2 < len && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
            c = (char)(hex_value(in[i + 1]) << 4 | hex_value(in[i + 2]));
            i += 2;
        }
        if (w < cap)
            out[w] = c;
        w++;
    }
    if (w < cap)
        out[w] = '\0';
    return w;
}

/* ---- base64 ------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fsr_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    /* Returns the full (padded) length; writes only whole 4-character groups that fit. */
    size_t need = (len + 2) / 3 * 4;
    size_t w = 0;
    for (size_t i = 0; i < len; i += 3) {
        if (w + 4 > cap)
            break;
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[w++] = b64_alphabet[v >> 18 & 0x3f];
        out[w++] = b64_alphabet[v >> 12 & 0x3f];
        out[w++] = i + 1 < len ? b64_alphabet[v >> 6 & 0x3f] : '=';
        out[w++] = i + 2 < len ? b64_alphabet[v & 0x3f] : '=';
    }
    if (w < cap)
        out[w] = '\0';
    return need;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

size_t fsr_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    /* gRPC peers may omit padding; if present it must be complete and only at the end. */
    if (len % 4 == 0 && len > 0 && in[len - 1] == '=') {
        len--;
        if (in[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return (size_t)-1;
    size_t outlen = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (outlen > cap)
        return (size_t)-1;
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return (size_t)-1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[w++] = (uint8_t)(acc >> bits);
        }
    }
    /* The leftover bits of a partial group must be zero (canonical encoding). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return (size_t)-1;
    return w;
}

/* ---- metadata keys ------------------------------------------------------------------ */

int fsr_md_is_binary(const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;
    return n > 4 && memcmp(key + n - 4, "-bin", 4) == 0;
}

int fsr_md_key_is_custom(const char *key)
{
    /*
     * Headers the transport owns: HTTP/2 connection-specific ones (RFC 9113 §8.2.2), the
     * ones gRPC sets itself, and anything grpc-*.  Pseudo-headers fail the charset check.
     */
    static const char *const reserved[] = {
        "content-type", "content-length", "te",      "user-agent",       "host",
        "connection",   "keep-alive",     "upgrade", "proxy-connection", "transfer-encoding",
    };
    if (key == NULL || key[0] == '\0')
        return 0;
    for (const char *p = key; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    if (strncmp(key, "grpc-", 5) == 0)
        return 0;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcmp(key, reserved[i]) == 0)
            return 0;
    }
    return 1;
}
