/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the price-import CSV parser (svc_worker/eq_import_csv.c), the code that reads
 * a client's uploaded file in the worker.  The input is the file.  Checks beyond the
 * sanitizers: every accepted row holds a real date, positive decimal prices with low <= open,
 * close <= high and a volume >= 0; every data line is either accepted or rejected; the
 * rejection list renders as JSON (it is stored as the job's result).
 */
#include "eq_import.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_price(const char *v)
{
    int sign = 0;
    if (fsr_decimal_check(v, &sign, NULL) != 0 || sign <= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The job reads the file as a NUL-terminated string, so a NUL ends it there too. */
    char *csv = malloc(size + 1);
    memcpy(csv, data, size);
    csv[size] = '\0';
    ei_job ij;
    memset(&ij, 0, sizeof(ij));
    ij.rejected = json_array();
    size_t cap = wk_ei_csv_max_rows(csv);
    ij.row = malloc(sizeof(*ij.row) * cap);
    wk_ei_parse_csv(&ij, csv);
    if (ij.n_row > cap || ij.n_row > (size_t)ij.rows || ij.rows > ij.lines)
        abort();
    if ((long long)ij.n_row + ij.n_rejected < ij.rows)
        abort(); /* a data line neither accepted nor rejected */
    for (size_t i = 0; i < ij.n_row; i++) {
        const ei_row *r = &ij.row[i];
        if (r->line < 1 || r->line > ij.lines || r->symbol[0] == '\0' ||
            strlen(r->symbol) > EI_SYMBOL_MAX || r->volume < 0)
            abort();
        if (fsr_date_parse(r->date, NULL, NULL, NULL) != 0)
            abort();
        check_price(r->open);
        check_price(r->high);
        check_price(r->low);
        check_price(r->close);
        if (fsr_decimal_cmp(r->low, r->open) > 0 || fsr_decimal_cmp(r->low, r->close) > 0 ||
            fsr_decimal_cmp(r->high, r->open) < 0 || fsr_decimal_cmp(r->high, r->close) < 0)
            abort();
    }
    char *js = json_dumps(ij.rejected, JSON_COMPACT);
    if (js == NULL)
        abort(); /* invalid UTF-8 slipped into a reason or symbol */
    free(js);
    json_decref(ij.rejected);
    free(ij.row);
    free(csv);
    return 0;
}
