/* SPDX-License-Identifier: MIT */
/* Handler helpers shared by the services (fsr/handler.h). */
#include "fsr/handler.h"

#include "fsr/validate.h"

int fsr_check_text(fsr_call *call, const char *field, const char *v, bool required, size_t max,
                   bool allow_space)
{
    const char *why = NULL;
    if (required && v[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return -1;
    }
    if (fsr_text_check(v, max, allow_space, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "%s", why);
        return -1;
    }
    return 0;
}

int fsr_check_uuid(fsr_call *call, const char *field, const char *v)
{
    if (v == NULL || v[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return -1;
    }
    if (!fsr_uuid_valid(v)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "must be a UUID");
        return -1;
    }
    return 0;
}

char *fsr_pg_col_dup(fsr_call *call, const fsr_pg_result *res, int row, int col)
{
    return fsr_arena_strdup(fsr_call_arena(call), fsr_pg_result_getvalue(res, row, col));
}

Google__Protobuf__Timestamp *fsr_timestamp_from_pg(fsr_call *call, const char *text)
{
    int64_t s;
    int32_t ns;
    if (fsr_pg_timestamp_parse(text, &s, &ns) != 0)
        return NULL;
    Google__Protobuf__Timestamp *ts = fsr_call_alloc(call, sizeof(*ts));
    google__protobuf__timestamp__init(ts);
    ts->seconds = s;
    ts->nanos = ns;
    return ts;
}
