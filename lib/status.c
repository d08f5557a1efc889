/* SPDX-License-Identifier: MIT */
/* gRPC status codes: names, the HTTP mapping the gateway uses, and internal error mapping. */
#define _GNU_SOURCE /* strerrordesc_np */
#include "fsr/status.h"

#include <errno.h>
#include <string.h>

/*
 * One row per code, indexed by the code's number.  The HTTP column is grpc-gateway's
 * HTTPStatusFromCode (runtime/errors.go), so REST clients see what they would see behind
 * grpc-gateway.
 */
static const struct {
    const char *name;
    int http;
} code_table[FSR_CODE_COUNT] = {
    [FSR_OK] = { "OK", 200 },
    [FSR_CANCELLED] = { "CANCELLED", 499 },
    [FSR_UNKNOWN] = { "UNKNOWN", 500 },
    [FSR_INVALID_ARGUMENT] = { "INVALID_ARGUMENT", 400 },
    [FSR_DEADLINE_EXCEEDED] = { "DEADLINE_EXCEEDED", 504 },
    [FSR_NOT_FOUND] = { "NOT_FOUND", 404 },
    [FSR_ALREADY_EXISTS] = { "ALREADY_EXISTS", 409 },
    [FSR_PERMISSION_DENIED] = { "PERMISSION_DENIED", 403 },
    [FSR_RESOURCE_EXHAUSTED] = { "RESOURCE_EXHAUSTED", 429 },
    [FSR_FAILED_PRECONDITION] = { "FAILED_PRECONDITION", 400 },
    [FSR_ABORTED] = { "ABORTED", 409 },
    [FSR_OUT_OF_RANGE] = { "OUT_OF_RANGE", 400 },
    [FSR_UNIMPLEMENTED] = { "UNIMPLEMENTED", 501 },
    [FSR_INTERNAL] = { "INTERNAL", 500 },
    [FSR_UNAVAILABLE] = { "UNAVAILABLE", 503 },
    [FSR_DATA_LOSS] = { "DATA_LOSS", 500 },
    [FSR_UNAUTHENTICATED] = { "UNAUTHENTICATED", 401 },
};

const char *fsr_code_name(fsr_code code)
{
    /* The enum may arrive holding any int (e.g. a raw grpc-status); compare unsigned. */
    if ((unsigned)code >= FSR_CODE_COUNT)
        return "UNKNOWN";
    return code_table[code].name;
}

int fsr_code_from_name(const char *name, fsr_code *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < FSR_CODE_COUNT; i++) {
        if (strcmp(name, code_table[i].name) == 0) {
            *out = (fsr_code)i;
            return 0;
        }
    }
    return -1;
}

int fsr_code_http_status(fsr_code code)
{
    /* grpc-gateway answers 500 for codes it does not know. */
    if ((unsigned)code >= FSR_CODE_COUNT)
        return 500;
    return code_table[code].http;
}

fsr_code fsr_code_from_err(int err)
{
    switch (err) {
    case 0:
        return FSR_OK;
    case FSR_E_POOL:
    case FSR_E_CLOSED:
    case -ECONNREFUSED:
    case -ECONNRESET:
        /* A dependency is (maybe briefly) out of reach: clients may retry. */
        return FSR_UNAVAILABLE;
    case FSR_E_TIMEOUT:
    case -ETIMEDOUT:
        return FSR_DEADLINE_EXCEEDED;
    case FSR_E_UNIQUE:
        return FSR_ALREADY_EXISTS;
    case FSR_E_CHECK:
        return FSR_FAILED_PRECONDITION;
    case FSR_E_NOTFOUND:
        return FSR_NOT_FOUND;
    case FSR_E_TOO_LARGE:
        return FSR_RESOURCE_EXHAUSTED;
    case FSR_E_CANCELLED:
    case -ECANCELED:
        return FSR_CANCELLED;
    default:
        return FSR_INTERNAL;
    }
}

const char *fsr_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case FSR_E_PROTOCOL:
        return "protocol error";
    case FSR_E_TOO_LARGE:
        return "size over the configured limit";
    case FSR_E_TIMEOUT:
        return "timed out";
    case FSR_E_CLOSED:
        return "connection closed";
    case FSR_E_POOL:
        return "pool exhausted";
    case FSR_E_UNIQUE:
        return "unique constraint violation";
    case FSR_E_CHECK:
        return "check or foreign-key constraint violation";
    case FSR_E_NOTFOUND:
        return "not found";
    case FSR_E_DB:
        return "database error";
    case FSR_E_CONFIG:
        return "bad configuration";
    case FSR_E_CANCELLED:
        return "cancelled";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* glibc's strerrordesc_np returns static text, so this stays thread-safe. */
        const char *s = strerrordesc_np(-err);
        if (s != NULL)
            return s;
    }
    return "unknown error";
}
