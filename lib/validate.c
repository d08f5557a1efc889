/* SPDX-License-Identifier: MIT */
/* Input validation shared by the services (see fsr/validate.h). */
#include "fsr/validate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- UUID ---------------------------------------------------------------------------- */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool fsr_uuid_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false; /* also stops at a NUL before 36 */
    }
    return s[36] == '\0';
}

/* ---- ISO 4217 ------------------------------------------------------------------------ */

/*
 * Active ISO 4217 alphabetic codes, sorted for bsearch().  Source: Debian's iso-codes 4.15
 * (iso_4217.json), adjusted for later amendments: HRK removed (Croatia adopted the euro on
 * 2023-01-01), ZWG (2024) and XCG (2025) added.  Codes still in their transition period (ANG,
 * SLL, ZWL) stay accepted.  XTS ("for testing") and XXX ("no currency") are left out on
 * purpose: neither can price anything.  Keep the list sorted: a unit test checks it.
 */
static const char *const currency_codes[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
};

static int cmp_code(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool fsr_currency_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < 3; i++) {
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    }
    if (s[3] != '\0')
        return false;
    return bsearch(&s, currency_codes, FSR_ARRAY_SIZE(currency_codes), sizeof(currency_codes[0]),
                   cmp_code) != NULL;
}

const char *const *fsr_currency_codes(size_t *n)
{
    *n = FSR_ARRAY_SIZE(currency_codes);
    return currency_codes;
}

/* ---- ISIN (ISO 6166) ------------------------------------------------------------------ */

bool fsr_isin_shaped(const char *s)
{
    if (s == NULL || strlen(s) != 12)
        return false;
    for (int i = 0; i < 12; i++) {
        char c = s[i];
        bool up = c >= 'A' && c <= 'Z', dig = c >= '0' && c <= '9';
        if (i < 2 ? !up : i == 11 ? !dig : !(up || dig))
            return false;
    }
    return true;
}

bool fsr_isin_valid(const char *s)
{
    if (s == NULL || strlen(s) != 12)
        return false;
    /*
     * Expand to digits (A=10 .. Z=35, so a letter becomes two digits), then Luhn from the
     * right: the check digit is position 1 and every second digit from position 2 is doubled.
     * At most 11 letters, so 23 digits fit in the buffer.
     */
    char digits[24];
    size_t nd = 0;
    for (int i = 0; i < 12; i++) {
        char c = s[i];
        bool upper = c >= 'A' && c <= 'Z', digit = c >= '0' && c <= '9';
        if ((i < 2 && !upper) || (i == 11 && !digit) || (!upper && !digit))
            return false;
        if (digit) {
            digits[nd++] = (char)(c - '0');
        } else {
            int v = c - 'A' + 10;
            digits[nd++] = (char)(v / 10);
            digits[nd++] = (char)(v % 10);
        }
    }
    int sum = 0;
    for (size_t k = 0; k < nd; k++) {
        int d = digits[nd - 1 - k];
        if (k % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

/* ---- decimals ------------------------------------------------------------------------- */

int fsr_decimal_check(const char *s, int *sign, const char **why)
{
    static const char bad_syntax[] = "must be a decimal number like \"1234.56\"";
    const char *reason = bad_syntax;
    if (s == NULL || *s == '\0')
        goto fail;
    const char *p = s;
    bool negative = false;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    /* Integer part: at least one digit; leading zeros are not significant. */
    const char *int_start = p;
    while (*p == '0')
        p++;
    const char *sig_start = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == int_start)
        goto fail;
    size_t int_digits = (size_t)(p - sig_start);
    bool nonzero = int_digits > 0;
    size_t frac_digits = 0;
    if (*p == '.') {
        p++;
        const char *frac_start = p;
        while (*p >= '0' && *p <= '9') {
            if (*p != '0')
                nonzero = true;
            p++;
        }
        frac_digits = (size_t)(p - frac_start);
        if (frac_digits == 0)
            goto fail;
    }
    if (*p != '\0')
        goto fail;
    if (int_digits > FSR_DECIMAL_MAX_INT_DIGITS) {
        reason = "has more than 18 integer digits";
        goto fail;
    }
    if (frac_digits > FSR_DECIMAL_MAX_FRAC_DIGITS) {
        reason = "has more than 10 fraction digits";
        goto fail;
    }
    if (sign != NULL)
        *sign = !nonzero ? 0 : negative ? -1 : 1;
    return 0;

fail:
    if (why != NULL)
        *why = reason;
    return -EINVAL;
}

/*
 * The integer parts without leading zeros compare by length, then digit by digit; then the
 * fractions digit by digit, a missing digit counting as 0.
 */
int fsr_decimal_cmp(const char *a, const char *b)
{
    /*
     * Signs: with sign >= 0 a '-' can only stand before a zero ("-0.00"), which must equal
     * every other zero (found by test/fuzz/fuzz_validate.c: "00" vs "-0.00" was unequal).
     */
    if (*a == '+' || *a == '-')
        a++;
    if (*b == '+' || *b == '-')
        b++;
    while (*a == '0' && a[1] != '.' && a[1] != '\0')
        a++;
    while (*b == '0' && b[1] != '.' && b[1] != '\0')
        b++;
    size_t ia = strcspn(a, "."), ib = strcspn(b, ".");
    if (ia != ib)
        return ia < ib ? -1 : 1;
    int c = strncmp(a, b, ia);
    if (c != 0)
        return c < 0 ? -1 : 1;
    const char *fa = a[ia] == '.' ? a + ia + 1 : "";
    const char *fb = b[ib] == '.' ? b + ib + 1 : "";
    while (*fa != '\0' || *fb != '\0') {
        char da = *fa != '\0' ? *fa++ : '0';
        char db = *fb != '\0' ? *fb++ : '0';
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

/* ---- dates and timestamps -------------------------------------------------------------- */

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly |n| decimal digits at |s|; returns the value or -1. */
static int read_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Parses "YYYY-MM-DD" at the start of |s| (the caller checks what follows). */
static int parse_ymd(const char *s, int *y, int *m, int *d)
{
    int yy = read_digits(s, 4);
    if (yy < 1 || s[4] != '-')
        return -EINVAL;
    int mm = read_digits(s + 5, 2);
    if (mm < 1 || mm > 12 || s[7] != '-')
        return -EINVAL;
    int dd = read_digits(s + 8, 2);
    if (dd < 1 || dd > days_in_month(yy, mm))
        return -EINVAL;
    *y = yy;
    *m = mm;
    *d = dd;
    return 0;
}

int fsr_date_parse(const char *s, int *year, int *month, int *day)
{
    int y, m, d;
    if (s == NULL || strlen(s) != 10 || parse_ymd(s, &y, &m, &d) != 0)
        return -EINVAL;
    if (year != NULL)
        *year = y;
    if (month != NULL)
        *month = m;
    if (day != NULL)
        *day = d;
    return 0;
}

int64_t fsr_days_from_civil(int year, int month, int day)
{
    /* Howard Hinnant's days_from_civil: eras of 400 years, March-based years. */
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int fsr_pg_timestamp_parse(const char *s, int64_t *seconds, int32_t *nanos)
{
    int y, mo, d;
    if (s == NULL || strlen(s) < 19 || parse_ymd(s, &y, &mo, &d) != 0)
        return -EINVAL;
    if (s[10] != ' ' && s[10] != 'T')
        return -EINVAL;
    int hh = read_digits(s + 11, 2), mi = read_digits(s + 14, 2), ss = read_digits(s + 17, 2);
    if (hh < 0 || hh > 23 || s[13] != ':' || mi < 0 || mi > 59 || s[16] != ':' || ss < 0 || ss > 59)
        return -EINVAL;
    const char *p = s + 19;
    int32_t ns = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (++n > 9)
                return -EINVAL;
            ns = ns * 10 + (*p++ - '0');
        }
        if (n == 0)
            return -EINVAL;
        for (; n < 9; n++)
            ns *= 10;
    }
    /* The offset: "Z", or +HH, +HH:MM or +HH:MM:SS (Postgres prints only what is non-zero). */
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sgn = *p++ == '-' ? -1 : 1;
        int oh = read_digits(p, 2);
        if (oh < 0 || oh > 15)
            return -EINVAL;
        p += 2;
        int om = 0, os = 0;
        if (*p == ':') {
            om = read_digits(p + 1, 2);
            if (om < 0 || om > 59)
                return -EINVAL;
            p += 3;
            if (*p == ':') {
                os = read_digits(p + 1, 2);
                if (os < 0 || os > 59)
                    return -EINVAL;
                p += 3;
            }
        }
        off = sgn * ((int64_t)oh * 3600 + om * 60 + os);
    } else {
        return -EINVAL; /* a timestamptz always carries its offset */
    }
    if (*p != '\0')
        return -EINVAL;
    *seconds = fsr_days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off;
    *nanos = ns;
    return 0;
}

/* ---- free text ------------------------------------------------------------------------ */

int fsr_text_check(const char *s, size_t max_bytes, bool allow_space, const char **why)
{
    const char *reason = NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    if (s == NULL) {
        reason = "is required";
        goto fail;
    }
    while (p[n] != '\0') {
        unsigned c = p[n];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                reason = "must not contain control characters";
                goto fail;
            }
            if (c == ' ' && !allow_space) {
                reason = "must not contain spaces";
                goto fail;
            }
            n++;
            continue;
        }
        /* Multi-byte UTF-8: length from the lead byte, then the shortest-form ranges. */
        size_t len;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            reason = "must be valid UTF-8";
            goto fail;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[n + k] & 0xc0) != 0x80) {
                reason = "must be valid UTF-8";
                goto fail;
            }
            cp = cp << 6 | (p[n + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            reason = "must be valid UTF-8";
            goto fail;
        }
        n += len;
    }
    if (n > max_bytes) {
        reason = "is too long";
        goto fail;
    }
    return 0;

fail:
    if (why != NULL)
        *why = reason;
    return -EINVAL;
}

/* ---- paging --------------------------------------------------------------------------- */

int fsr_page_size_resolve(int32_t requested, int *out)
{
    if (requested < 0 || requested > FSR_PAGE_SIZE_MAX)
        return -EINVAL;
    *out = requested == 0 ? FSR_PAGE_SIZE_DEFAULT : requested;
    return 0;
}

/* The token's first line: bump it when the cursor's shape changes. */
#define PAGE_TOKEN_VERSION    "p1"
#define PAGE_TOKEN_FIELDS_MAX 8

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *fsr_page_token_encode(fsr_arena *arena, const char *const *fields, size_t n)
{
    if (n == 0 || n > PAGE_TOKEN_FIELDS_MAX)
        return NULL;
    size_t len = strlen(PAGE_TOKEN_VERSION);
    for (size_t i = 0; i < n; i++) {
        if (fields[i] == NULL || strchr(fields[i], '\n') != NULL)
            return NULL;
        len += 1 + strlen(fields[i]);
    }
    char *plain = fsr_arena_alloc(arena, len + 1), *w = plain;
    w = stpcpy(w, PAGE_TOKEN_VERSION);
    for (size_t i = 0; i < n; i++) {
        *w++ = '\n';
        w = stpcpy(w, fields[i]);
    }
    const unsigned char *in = (const unsigned char *)plain;
    char *out = fsr_arena_alloc(arena, (len + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64url[v >> 18];
        *o++ = b64url[(v >> 12) & 63];
        *o++ = b64url[(v >> 6) & 63];
        *o++ = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64url[v >> 18];
        *o++ = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64url[v >> 18];
        *o++ = b64url[(v >> 12) & 63];
        *o++ = b64url[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

static int b64url_value(char c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;
    return p != NULL ? (int)(p - b64url) : -1;
}

int fsr_page_token_decode(fsr_arena *arena, const char *token, char **fields, size_t n)
{
    if (token == NULL || n == 0 || n > PAGE_TOKEN_FIELDS_MAX)
        return -EINVAL;
    size_t len = strlen(token);
    if (len == 0 || len > FSR_PAGE_TOKEN_MAX || len % 4 == 1)
        return -EINVAL;
    char *plain = fsr_arena_alloc(arena, len / 4 * 3 + 3);
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(token[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            plain[w++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* Canonical encodings only: the leftover bits of a partial group are zero. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -EINVAL;
    plain[w] = '\0';
    if (memchr(plain, '\0', w) != NULL)
        return -EINVAL;

    size_t vlen = strlen(PAGE_TOKEN_VERSION);
    if (w < vlen + 1 || memcmp(plain, PAGE_TOKEN_VERSION "\n", vlen + 1) != 0)
        return -EINVAL;
    char *tmp[PAGE_TOKEN_FIELDS_MAX];
    char *p = plain + vlen + 1;
    size_t got = 0;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (got == n)
            return -EINVAL; /* more fields than expected */
        tmp[got++] = p;
        if (nl == NULL)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    if (got != n)
        return -EINVAL;
    memcpy(fields, tmp, n * sizeof(*fields));
    return 0;
}
