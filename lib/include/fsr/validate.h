/* SPDX-License-Identifier: MIT */
/*
 * Input validation shared by the services: UUIDs, ISO 4217 currency codes, ISINs, decimal
 * strings, calendar dates, free text, Postgres timestamps, and the opaque page tokens and
 * page sizes of list methods.  Pure functions: no I/O, no global state, any thread.
 */
#ifndef FSR_VALIDATE_H
#define FSR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/mem.h"

/*
 * True if |s| is a UUID in the canonical 36-character form 8-4-4-4-12 of hex digits (either
 * case), e.g. "3f2504e0-4f89-41d3-9a0c-0305e82c3301".  Braces, URNs and the 32-digit form
 * Postgres also accepts are refused, so ids look the same everywhere.  NULL is not valid.
 */
bool fsr_uuid_valid(const char *s);

/*
 * True if |s| is an active ISO 4217 alphabetic code: exactly three upper-case ASCII letters
 * listed in the embedded table (currencies, funds, precious metals and the SDR; the
 * "testing" and "no currency" codes XTS and XXX are not accepted).  "usd" is not valid.
 */
bool fsr_currency_valid(const char *s);

/*
 * The embedded ISO 4217 table, sorted ascending by strcmp(): *|n| codes of three letters.
 * For tests and for listing the accepted codes in documentation.
 */
const char *const *fsr_currency_codes(size_t *n);

/*
 * True if |s| is an ISIN (ISO 6166): 12 characters, a 2-letter country prefix, 9
 * upper-case letters or digits, and a check digit that satisfies the Luhn algorithm over the
 * string with every letter replaced by its value A=10 .. Z=35.  Upper case only.
 */
bool fsr_isin_valid(const char *s);

/*
 * True if |s| has an ISIN's structure (2 upper-case letters, 9 upper-case alphanumerics, a
 * digit), whatever its check digit: lets callers tell a malformed ISIN from a wrong check digit.
 */
bool fsr_isin_shaped(const char *s);

/* Limits of stored decimals: NUMERIC with at most 18 integer and 10 fraction digits. */
#define FSR_DECIMAL_MAX_INT_DIGITS  18
#define FSR_DECIMAL_MAX_FRAC_DIGITS 10

/*
 * Checks that |s| is a plain decimal number: an optional sign ('+' or '-'), one or more
 * digits, and optionally '.' followed by one or more digits ("12", "-0.5", "1234.5600").
 * Exponents, blanks, ".5", "5.", "NaN" and "Infinity" are refused, as are more than
 * FSR_DECIMAL_MAX_INT_DIGITS significant integer digits (leading zeros do not count) or more
 * than FSR_DECIMAL_MAX_FRAC_DIGITS fraction digits (trailing zeros do count: the value is
 * stored with the scale it was given).
 *
 * The text itself is what the caller stores (Postgres NUMERIC parses it exactly), so a
 * valid amount never passes through a double.
 *
 * Returns 0 and sets *|sign| (if not NULL) to -1, 0 or 1 (zero in any spelling, "-0.00"
 * included, is 0); or returns -EINVAL and sets *|why| (if not NULL) to a static, client-safe
 * description such as "must be a decimal number like \"1234.56\"".
 */
int fsr_decimal_check(const char *s, int *sign, const char **why);

/*
 * Compares two non-negative decimals exactly (no double): returns <0, 0 or >0 as |a| is
 * below, equal to or above |b| ("1.50" equals "1.5", "007" equals "7").  Both must be
 * accepted by fsr_decimal_check() with a sign >= 0 (a leading '+' is allowed); anything
 * else gives an unspecified order.
 */
int fsr_decimal_cmp(const char *a, const char *b);

/*
 * Parses a calendar date "YYYY-MM-DD" (exactly 10 characters, year 0001..9999, a real day
 * of the Gregorian calendar: "2023-02-29" is refused, "2024-02-29" accepted).  Returns 0 and
 * sets the out-params (each may be NULL), or -EINVAL (out-params untouched).  Valid dates
 * compare chronologically with strcmp().
 */
int fsr_date_parse(const char *s, int *year, int *month, int *day);

/* Days from 1970-01-01 to the given proleptic Gregorian date (negative before). */
int64_t fsr_days_from_civil(int year, int month, int day);

/*
 * Parses a timestamptz as Postgres prints it with DateStyle ISO, such as
 * "2024-01-02 03:04:05.123456+00", "2024-01-02 03:04:05+05:30" or "...-03:30:15", into
 * seconds since the Unix epoch and nanoseconds (0..999999999), the two fields of
 * google.protobuf.Timestamp.  A 'T' separator and a 'Z' offset (RFC 3339) are accepted too;
 * fractions beyond nanoseconds, "infinity" and BC dates are not.  Returns 0, or -EINVAL
 * (out-params untouched).
 */
int fsr_pg_timestamp_parse(const char *s, int64_t *seconds, int32_t *nanos);

/*
 * Checks free text from a request before it reaches the database: valid UTF-8 (no
 * overlong forms or surrogates), no control characters (U+0000..U+001F, U+007F), at most
 * |max_bytes| bytes, and, unless |allow_space|, no space either (codes, symbols).  The
 * empty string passes (check "required" separately).  Returns 0, or -EINVAL with a static
 * client-safe description in *|why| (if not NULL).
 */
int fsr_text_check(const char *s, size_t max_bytes, bool allow_space, const char **why);

/* ---- list paging ------------------------------------------------------------------- */

#define FSR_PAGE_SIZE_DEFAULT 50
#define FSR_PAGE_SIZE_MAX     1000
#define FSR_PAGE_TOKEN_MAX    1024 /* longest token accepted, in characters */

/*
 * Resolves a request's page_size: 0 means FSR_PAGE_SIZE_DEFAULT.  Returns 0 and sets *|out|,
 * or -EINVAL for a negative size or one above FSR_PAGE_SIZE_MAX.
 */
int fsr_page_size_resolve(int32_t requested, int *out);

/*
 * Encodes the keyset cursor |fields|[0..|n|) (the sort key of the last row of a page) as an
 * opaque, URL-safe token (base64url without padding of a version tag and the fields) in
 * |arena|.  The fields must not contain '\n' and there must be 1..8 of them.  Returns the
 * token, or NULL when a field is unusable (a bug in the caller).
 */
char *fsr_page_token_encode(fsr_arena *arena, const char *const *fields, size_t n);

/*
 * Decodes a token made by fsr_page_token_encode() with exactly |n| fields into |fields|
 * (strings in |arena|).  Returns 0, or -EINVAL for anything else: bad base64url, another
 * version, another number of fields, a token longer than FSR_PAGE_TOKEN_MAX.  The fields
 * are client-controlled: validate them before use.
 */
int fsr_page_token_decode(fsr_arena *arena, const char *token, char **fields, size_t n);

#endif /* FSR_VALIDATE_H */
