/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the input validators of lib/validate.c (dates, decimals, ISINs, currencies,
 * UUIDs, timestamps, free text, page tokens) and the fixed income dates and day counts of
 * svc_fixed_income/daycount.c.
 *
 * The input is read as text (up to the first NUL: the validators take C strings) and split
 * at the first newline into two strings for the comparisons.  Its raw bytes also give the
 * day count and four dates (as serials inside the supported range, the only ones the bond
 * code ever passes).  Checks beyond the sanitizers: the properties the headers promise.
 */
#include "fsr/validate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bondmath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sgn(int v)
{
    return (v > 0) - (v < 0);
}

static void check_text(const char *s)
{
    int y = 0, m = 0, d = 0;
    if (fsr_date_parse(s, &y, &m, &d) == 0) {
        if (strlen(s) != 10 || y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
            abort();
        /* The fixed income calendar must agree inside its range. */
        int32_t serial = fi_date_parse(s);
        if (y >= 1901 && y <= 2199) {
            char buf[11];
            if (serial == FI_NO_DATE || serial != fi_date_from_ymd(y, m, d) ||
                strcmp(fi_date_format(serial, buf), s) != 0)
                abort();
            if (fi_date_from_ymd(y, m, d) - FI_DATE_1970 != fsr_days_from_civil(y, m, d))
                abort();
        } else if (serial != FI_NO_DATE) {
            abort();
        }
    } else if (fi_date_parse(s) != FI_NO_DATE) {
        abort(); /* bond dates are a subset of API dates */
    }
    int sign = 9;
    const char *why = NULL;
    if (fsr_decimal_check(s, &sign, &why) == 0) {
        if (sign < -1 || sign > 1)
            abort();
        if (sign >= 0 && fsr_decimal_cmp(s, s) != 0)
            abort();
    } else if (why == NULL) {
        abort();
    }
    if (fsr_isin_valid(s) && !fsr_isin_shaped(s))
        abort();
    if (fsr_currency_valid(s) && strlen(s) != 3)
        abort();
    if (fsr_uuid_valid(s) && strlen(s) != 36)
        abort();
    int64_t secs;
    int32_t nanos = -1;
    if (fsr_pg_timestamp_parse(s, &secs, &nanos) == 0 && (nanos < 0 || nanos > 999999999))
        abort();
    why = NULL;
    if (fsr_text_check(s, 64, true, &why) != 0 && why == NULL)
        abort();
    if (fsr_text_check(s, 64, false, NULL) == 0 && strchr(s, ' ') != NULL)
        abort();
    /* Page tokens are client-controlled: decode with 1..3 fields, re-encode what decodes. */
    fsr_arena a;
    fsr_arena_init(&a);
    for (size_t n = 1; n <= 3; n++) {
        char *fields[3] = { NULL, NULL, NULL };
        if (fsr_page_token_decode(&a, s, fields, n) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (fields[i] == NULL)
                abort();
        char *tok = fsr_page_token_encode(&a, (const char *const *)fields, n);
        char *back[3] = { NULL, NULL, NULL };
        if (tok != NULL && fsr_page_token_decode(&a, tok, back, n) == 0)
            for (size_t i = 0; i < n; i++)
                if (strcmp(back[i], fields[i]) != 0)
                    abort();
    }
    fsr_arena_dispose(&a);
}

static void check_pair(const char *a, const char *b)
{
    int sa, sb;
    if (fsr_decimal_check(a, &sa, NULL) != 0 || fsr_decimal_check(b, &sb, NULL) != 0 || sa < 0 ||
        sb < 0)
        return;
    int ab = sgn(fsr_decimal_cmp(a, b)), ba = sgn(fsr_decimal_cmp(b, a));
    if (ab != -ba)
        abort();
    /* A zero compares equal to every other zero. */
    if (sa == 0 && sb == 0 && ab != 0)
        abort();
    if (sa == 0 && sb > 0 && ab >= 0)
        abort();
}

static uint32_t u32_at(const uint8_t *data, size_t size, size_t i)
{
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++)
        v = v << 8 | (i + k < size ? data[i + k] : 0);
    return v;
}

/* A serial in FI_DATE_MIN..FI_DATE_MAX, or FI_NO_DATE when |allow_none| and the top bit says so. */
static int32_t date_at(const uint8_t *data, size_t size, size_t i, int allow_none)
{
    uint32_t v = u32_at(data, size, i);
    if (allow_none && (v & 0x80000000u))
        return FI_NO_DATE;
    return FI_DATE_MIN + (int32_t)(v % (uint32_t)(FI_DATE_MAX - FI_DATE_MIN + 1));
}

static void check_day_count(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    int dc = data[0] % 8; /* 0 and 7 are not day counts: NaN */
    int32_t d1 = date_at(data, size, 1, 0), d2 = date_at(data, size, 5, 0);
    int32_t rs = date_at(data, size, 9, 1), re = date_at(data, size, 13, 1);
    double yf = fi_year_fraction(dc, d1, d2, rs, re);
    if (dc < FI_DC_ACT_ACT_ICMA || dc > FI_DC_ACT_365_FIXED) {
        if (!isnan(yf) || fi_day_count_name(dc) != NULL)
            abort();
        return;
    }
    if (fi_day_count_from_name(fi_day_count_name(dc)) != dc)
        abort();
    if (dc != FI_DC_ACT_ACT_ICMA) {
        /* Reference dates are ICMA's only: finite, zero for one date; 299 years of ACT/360
         * days are 303 "years", hence 310. */
        if (!isfinite(yf) || (d1 == d2 && yf != 0) || fabs(yf) > 310.0)
            abort();
        /* The actual-day counts are antisymmetric (30/360 is not, as in QuantLib). */
        if (dc != FI_DC_THIRTY_360_US && dc != FI_DC_THIRTY_E_360 &&
            yf != -fi_year_fraction(dc, d2, d1, rs, re))
            abort();
    } else if (rs == FI_NO_DATE && re == FI_NO_DATE) {
        /* No reference period: (d1, d2) is one, always accepted. */
        if (!isfinite(yf))
            abort();
    }
    /* Month arithmetic stays on a real day of the target month. */
    int n = (int)(int8_t)(size > 17 ? data[17] : 0);
    int32_t moved = fi_date_add_months(d1, n);
    int y, m, d, y0, m0, d0;
    fi_date_to_ymd(d1, &y0, &m0, &d0);
    fi_date_to_ymd(moved, &y, &m, &d);
    if ((y * 12 + m) - (y0 * 12 + m0) != n || d > d0 || (d < 28 && d != d0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    check_text(s);
    char *nl = strchr(s, '\n');
    if (nl != NULL) {
        *nl = '\0';
        check_text(s);
        check_text(nl + 1);
        check_pair(s, nl + 1);
    }
    free(s);
    check_day_count(data, size);
    return 0;
}
