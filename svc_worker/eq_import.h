/* SPDX-License-Identifier: MIT */
/*
 * equity.import_prices internals shared by eq_import.c (the job: lookups, upsert, commit
 * hook) and eq_import_csv.c (the pure CSV line parser, which test/fuzz/fuzz_csv_import.c
 * drives without Postgres or Redis).
 */
#ifndef WK_EQ_IMPORT_H
#define WK_EQ_IMPORT_H

#include <stddef.h>

#include <jansson.h>

#include "worker.h"

#define EI_FIELDS       7
#define EI_SYMBOL_MAX   64 /* "SYM.EXCHANGE": svc_equity's 32 + 1 + 16, with room */
#define EI_REJECTED_MAX 10000

/* One data line that passed the checks. */
typedef struct ei_row {
    int line;
    char *symbol; /* upper-cased */
    char *date, *open, *high, *low, *close;
    long long volume;
    const char *equity; /* resolved id */
} ei_row;

/* An equity a price write touched: what the commit hook needs. */
typedef struct ei_touched {
    char id[40];
    char from[16], to[16];
} ei_touched;

typedef struct ei_job {
    wk_job *job;
    char *exchange; /* "" when the import has none */
    int lines;      /* every line of the file */
    int rows;       /* data lines (not blank, not the header) */
    ei_row *row;
    size_t n_row;
    json_t *rejected; /* array */
    int n_rejected;
    ei_touched *touched;
    size_t n_touched;
} ei_job;

/*
 * Records line |line| of the file as rejected in ij->rejected (at most EI_REJECTED_MAX
 * entries; ij->n_rejected counts them all) with the printf-formatted reason.
 */
void wk_ei_reject(ei_job *ij, int line, const char *symbol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The most data lines |csv| can hold: the size ij->row needs for wk_ei_parse_csv(). */
size_t wk_ei_csv_max_rows(const char *csv);

/*
 * Reads every line of |csv| (NUL-terminated, modified in place) into ij->row, which must have
 * room for wk_ei_csv_max_rows(|csv|) rows, and rejects the bad ones into ij->rejected (a
 * jansson array the caller created).  Sets ij->lines, ij->rows and ij->n_row.  No I/O.
 */
void wk_ei_parse_csv(ei_job *ij, char *csv);

#endif /* WK_EQ_IMPORT_H */
