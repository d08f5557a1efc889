/* SPDX-License-Identifier: MIT */
/*
 * equity.import_prices: the CSV parser (the file format is described in eq_import.c).  Pure:
 * no I/O, no job state beyond the ei_job it fills, so the fuzzer can run it alone.
 */
#include "eq_import.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/validate.h"

void wk_ei_reject(ei_job *ij, int line, const char *symbol, const char *fmt, ...)
{
    ij->n_rejected++;
    if (json_array_size(ij->rejected) >= EI_REJECTED_MAX)
        return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "line", json_integer(line));
    /* Checked constructors: a field cut at 512 bytes may end inside a UTF-8 sequence. */
    json_t *sym = symbol != NULL && symbol[0] != '\0' ? json_string(symbol) : NULL;
    if (sym != NULL)
        json_object_set_new(o, "symbol", sym);
    json_t *why = json_string(reason);
    json_object_set_new(o, "reason", why != NULL ? why : json_string("invalid line"));
    json_array_append_new(ij->rejected, o);
}

/*
 * Splits |line| in place into fields (commas; double quotes around a field protect commas,
 * "" inside them is a quote; blanks around a field are dropped).  Stores at most |max|
 * field pointers in |f| and returns the number of fields found.
 */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p, *end;
        if (*p == '"') {
            char *w = ++p;
            start = p;
            while (*p != '\0') {
                if (*p == '"') {
                    if (p[1] != '"') {
                        p++;
                        break;
                    }
                    p++;
                }
                *w++ = *p++;
            }
            end = w;
            while (*p != '\0' && *p != ',')
                p++;
        } else {
            while (*p != '\0' && *p != ',')
                p++;
            end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        }
        char sep = *p;
        *end = '\0';
        if (n < max)
            f[n] = start;
        n++;
        if (sep != ',')
            return n;
        p++;
    }
}

static bool ascii_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* Checks price field |name| = |v|; on error rejects the line and returns -1. */
static int check_price(ei_job *ij, int line, const char *sym, const char *name, const char *v)
{
    const char *why = NULL;
    int sign = 0;
    if (v[0] == '\0') {
        wk_ei_reject(ij, line, sym, "%s: is required", name);
        return -1;
    }
    if (fsr_decimal_check(v, &sign, &why) != 0) {
        wk_ei_reject(ij, line, sym, "%s: %s", name, why);
        return -1;
    }
    if (sign <= 0) {
        wk_ei_reject(ij, line, sym, "%s: must be > 0", name);
        return -1;
    }
    return 0;
}

/* Parses and checks one data line into |r|; rejects it and returns -1 if bad. */
static int parse_row(ei_job *ij, int line, char **f, int nf, ei_row *r)
{
    char *sym = nf > 0 ? f[0] : NULL;
    if (nf != EI_FIELDS) {
        wk_ei_reject(ij, line, sym,
                     "expected 7 fields (symbol,date,open,high,low,close,volume), found %d", nf);
        return -1;
    }
    size_t sl = strlen(sym);
    if (sl == 0) {
        wk_ei_reject(ij, line, NULL, "symbol: is required");
        return -1;
    }
    if (sl > EI_SYMBOL_MAX) {
        wk_ei_reject(ij, line, NULL, "symbol: longer than %d characters", EI_SYMBOL_MAX);
        return -1;
    }
    for (char *p = sym; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f || c >= 0x80) {
            wk_ei_reject(ij, line, NULL, "symbol: must be printable ASCII without blanks");
            return -1;
        }
        if (c >= 'a' && c <= 'z')
            *p = (char)(c - 32);
    }
    if (fsr_date_parse(f[1], NULL, NULL, NULL) != 0) {
        wk_ei_reject(ij, line, sym, "date: must be a date \"YYYY-MM-DD\"");
        return -1;
    }
    if (check_price(ij, line, sym, "open", f[2]) != 0 ||
        check_price(ij, line, sym, "high", f[3]) != 0 ||
        check_price(ij, line, sym, "low", f[4]) != 0 ||
        check_price(ij, line, sym, "close", f[5]) != 0)
        return -1;
    if (fsr_decimal_cmp(f[3], f[4]) < 0 || fsr_decimal_cmp(f[3], f[2]) < 0 ||
        fsr_decimal_cmp(f[3], f[5]) < 0) {
        wk_ei_reject(ij, line, sym, "high: must be >= open, close and low");
        return -1;
    }
    if (fsr_decimal_cmp(f[4], f[2]) > 0 || fsr_decimal_cmp(f[4], f[5]) > 0) {
        wk_ei_reject(ij, line, sym, "low: must be <= open, close and high");
        return -1;
    }
    long long vol = 0;
    const char *v = f[6];
    if (v[0] != '\0') {
        const char *d = v[0] == '+' || v[0] == '-' ? v + 1 : v;
        size_t nd = strspn(d, "0123456789");
        if (nd == 0 || d[nd] != '\0' || nd > 18) {
            wk_ei_reject(ij, line, sym, "volume: must be a whole number of shares");
            return -1;
        }
        vol = strtoll(v, NULL, 10);
        if (vol < 0) {
            wk_ei_reject(ij, line, sym, "volume: must be >= 0");
            return -1;
        }
    }
    r->line = line;
    r->symbol = sym;
    r->date = f[1];
    r->open = f[2];
    r->high = f[3];
    r->low = f[4];
    r->close = f[5];
    r->volume = vol;
    return 0;
}

size_t wk_ei_csv_max_rows(const char *csv)
{
    size_t cap = 1;
    for (const char *p = csv; *p; p++)
        cap += *p == '\n';
    return cap;
}

/* The header, when present, is the first non-blank line. */
void wk_ei_parse_csv(ei_job *ij, char *csv)
{
    bool first = true;
    int line = 0;
    char *p = csv;
    while (*p != '\0') {
        char *eol = strchr(p, '\n');
        char *next = eol != NULL ? eol + 1 : p + strlen(p);
        if (eol != NULL)
            *eol = '\0';
        line++;
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = '\0';
        if (strspn(p, " \t") == len) {
            p = next;
            continue;
        }
        char *f[EI_FIELDS];
        int nf = split_fields(p, f, EI_FIELDS);
        if (first) {
            first = false;
            if (nf > 0 && ascii_ieq(f[0], "symbol")) {
                static const char *const want[EI_FIELDS] = { "symbol", "date",  "open",  "high",
                                                             "low",    "close", "volume" };
                bool ok = nf == EI_FIELDS;
                for (int i = 0; ok && i < EI_FIELDS; i++)
                    ok = ascii_ieq(f[i], want[i]);
                if (!ok)
                    wk_ei_reject(ij, line, NULL,
                                 "header: must be symbol,date,open,high,low,close,volume (the "
                                 "lines are read in that order)");
                p = next;
                continue;
            }
        }
        ij->rows++;
        if (parse_row(ij, line, f, nf, &ij->row[ij->n_row]) == 0)
            ij->n_row++;
        p = next;
    }
    ij->lines = line;
}
