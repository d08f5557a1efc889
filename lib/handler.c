/* SPDX-License-Identifier: MIT */
/* Handler helpers shared by the services (fsr/handler.h). */
#include "fsr/handler.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fsr/metadata.h"
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

int fsr_caller_of(fsr_call *call, fsr_caller *out)
{
    size_t id_len = 0, role_len = 0;
    const char *id = fsr_call_metadata(call, "x-client-id", &id_len);
    const char *role = fsr_call_metadata(call, "x-client-role", &role_len);
    out->client_id = NULL;
    out->role = FSR_ROLE_INTERNAL;
    if (id == NULL && role == NULL)
        return 0;
    if (id == NULL || role == NULL) {
        fsr_call_fail(call, FSR_INVALID_ARGUMENT,
                      "x-client-id and x-client-role metadata go together");
        return -1;
    }
    char *copy = fsr_arena_strndup(fsr_call_arena(call), id, id_len);
    if (strlen(copy) != id_len || !fsr_uuid_valid(copy)) {
        fsr_call_fail(call, FSR_INVALID_ARGUMENT, "x-client-id metadata must be a UUID");
        return -1;
    }
    for (char *p = copy; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    static const struct {
        const char *name;
        fsr_role role;
    } roles[] = { { "client", FSR_ROLE_CLIENT },
                  { "data", FSR_ROLE_DATA },
                  { "admin", FSR_ROLE_ADMIN } };
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (role_len == strlen(roles[i].name) && memcmp(role, roles[i].name, role_len) == 0) {
            out->client_id = copy;
            out->role = roles[i].role;
            return 0;
        }
    }
    fsr_call_fail(call, FSR_INVALID_ARGUMENT,
                  "x-client-role metadata must be \"admin\", \"data\" or \"client\"");
    return -1;
}

fsr_code fsr_authorize_client_reads(const fsr_call *call, const char *const *open, size_t n_open,
                                    const char **message)
{
    size_t len = 0;
    const char *role = fsr_call_metadata(call, "x-client-role", &len);
    if (role == NULL)
        return FSR_OK; /* internal caller */
    if ((len == 5 && memcmp(role, "admin", 5) == 0) || (len == 4 && memcmp(role, "data", 4) == 0))
        return FSR_OK;
    const fsr_method *m = fsr_call_method(call);
    if (m == NULL)
        return FSR_OK; /* unknown method: the runtime answers UNIMPLEMENTED itself */
    if (m->flags & FSR_M_NO_SIDE_EFFECTS)
        return FSR_OK;
    for (size_t i = 0; i < n_open; i++) {
        if (strcmp(m->name, open[i]) == 0)
            return FSR_OK;
    }
    *message = "the caller's role may not change data (role admin or data required)";
    return FSR_PERMISSION_DENIED;
}

void fsr_call_fail_dependency(fsr_call *call, const char *dependency, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fsr_call_add_trailer(call, FSR_MD_DEPENDENCY_UNAVAILABLE, dependency, strlen(dependency));
    fsr_call_fail(call, FSR_UNAVAILABLE, "%s", msg);
}
