/* SPDX-License-Identifier: MIT */
/*
 * Helpers every service handler needs: field checks that finish the call with a field-named
 * INVALID_ARGUMENT, and conversions from Postgres result text into the call's arena.
 */
#ifndef FSR_HANDLER_H
#define FSR_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "fsr/pg.h"
#include "fsr/server.h"
#include "google/protobuf/timestamp.pb-c.h"

/*
 * Checks text field |v| (see fsr_text_check(): valid UTF-8, no control characters, at most
 * |max| bytes, spaces only if |allow_space|).  |required| refuses the empty string too.
 * Returns 0, or -1 after finishing |call| with INVALID_ARGUMENT naming |field|.
 */
int fsr_check_text(fsr_call *call, const char *field, const char *v, bool required, size_t max,
                   bool allow_space);

/*
 * Checks that |v| is a non-empty UUID.  Returns 0, or -1 after finishing |call| with
 * INVALID_ARGUMENT naming |field| ("is required" or "must be a UUID").
 */
int fsr_check_uuid(fsr_call *call, const char *field, const char *v);

/* Copies column |col| of row |row| of |res| into the call's arena ("" for NULL). */
char *fsr_pg_col_dup(fsr_call *call, const fsr_pg_result *res, int row, int col);

/*
 * Converts a Postgres timestamptz text ("2026-11-24 22:22:11.428533+00") into a Timestamp in
 * the call's arena; NULL if |text| does not parse.
 */
Google__Protobuf__Timestamp *fsr_timestamp_from_pg(fsr_call *call, const char *text);

#endif /* FSR_HANDLER_H */
