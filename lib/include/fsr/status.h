/* SPDX-License-Identifier: MIT */
/* gRPC status codes, internal error codes and their mapping. */
#ifndef FSR_STATUS_H
#define FSR_STATUS_H

/* The 17 canonical gRPC status codes, with gRPC's numbers. */
typedef enum fsr_code {
    FSR_OK = 0,
    FSR_CANCELLED = 1,
    FSR_UNKNOWN = 2,
    FSR_INVALID_ARGUMENT = 3,
    FSR_DEADLINE_EXCEEDED = 4,
    FSR_NOT_FOUND = 5,
    FSR_ALREADY_EXISTS = 6,
    FSR_PERMISSION_DENIED = 7,
    FSR_RESOURCE_EXHAUSTED = 8,
    FSR_FAILED_PRECONDITION = 9,
    FSR_ABORTED = 10,
    FSR_OUT_OF_RANGE = 11,
    FSR_UNIMPLEMENTED = 12,
    FSR_INTERNAL = 13,
    FSR_UNAVAILABLE = 14,
    FSR_DATA_LOSS = 15,
    FSR_UNAUTHENTICATED = 16,
} fsr_code;

#define FSR_CODE_COUNT 17

/*
 * A finished call's outcome.  |message| is client-safe text; |field|, when not NULL, names
 * the offending request field (lowerCamelCase JSON name) for INVALID_ARGUMENT and friends.
 * Strings are borrowed: static, or owned by the call's arena.
 */
typedef struct fsr_status {
    fsr_code code;
    const char *message;
    const char *field;
} fsr_status;

/* Internal error codes (negative; -errno values pass through as they are). */
enum {
    FSR_E_PROTOCOL = -1001,  /* malformed input from a peer */
    FSR_E_TOO_LARGE = -1002, /* a size over a configured limit */
    FSR_E_TIMEOUT = -1003,   /* a deadline or command timeout expired */
    FSR_E_CLOSED = -1004,    /* the connection or object was closed */
    FSR_E_POOL = -1005,      /* a pool is exhausted */
    FSR_E_UNIQUE = -1006,    /* unique constraint violation */
    FSR_E_CHECK = -1007,     /* check or foreign-key violation */
    FSR_E_NOTFOUND = -1008,  /* no such row or key */
    FSR_E_DB = -1009,        /* any other database error */
    FSR_E_CONFIG = -1010,    /* bad configuration */
    FSR_E_CANCELLED = -1011, /* cancelled by the caller */
};

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" for out-of-range values. */
const char *fsr_code_name(fsr_code code);

/* Parses a code name ("NOT_FOUND") into *|out|.  Returns 0, or -1 if unknown. */
int fsr_code_from_name(const char *name, fsr_code *out);

/*
 * The HTTP status the REST gateway answers for |code|, as grpc-gateway maps them
 * (INVALID_ARGUMENT 400, NOT_FOUND 404, ..., UNAVAILABLE 503).
 */
int fsr_code_http_status(fsr_code code);

/*
 * The single mapping from internal errors (FSR_E_*, -errno) to gRPC codes: pool exhausted
 * UNAVAILABLE, timeout DEADLINE_EXCEEDED, unique violation ALREADY_EXISTS, check/FK
 * violation FAILED_PRECONDITION, not found NOT_FOUND, anything else INTERNAL.
 */
fsr_code fsr_code_from_err(int err);

/* A short description of an internal error code or -errno. */
const char *fsr_strerror(int err);

#endif /* FSR_STATUS_H */
