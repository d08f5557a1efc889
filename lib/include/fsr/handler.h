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

/*
 * Finishes |call| with UNAVAILABLE because a service it depends on (|dependency|, e.g.
 * "portfolio" or "equity,fixed_income") could not answer, with the trailer that tells the
 * gateway this service itself is up and its message is the answer (fsr/metadata.h:
 * FSR_MD_DEPENDENCY_UNAVAILABLE).  |fmt| is the message, printf-style.
 */
void fsr_call_fail_dependency(fsr_call *call, const char *dependency, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Who is calling, from the metadata the gateway sets after authenticating an API key:
 * x-client-id (UUID) and x-client-role ("admin", "data" or "client").  A call without
 * x-client-id comes from inside the deployment (another service, an operator's gRPC
 * client): FSR_ROLE_INTERNAL, unscoped -- the service ports are not exposed (k8s
 * NetworkPolicy; docs/ARCHITECTURE.md).
 */
typedef enum fsr_role {
    FSR_ROLE_INTERNAL = 0,
    FSR_ROLE_CLIENT,
    FSR_ROLE_DATA,
    FSR_ROLE_ADMIN,
} fsr_role;

typedef struct fsr_caller {
    const char *client_id; /* lower-case UUID in the call's arena; NULL for INTERNAL */
    fsr_role role;
} fsr_caller;

/*
 * Fills *|out| from the call's metadata.  Returns 0, or -1 after finishing |call| with
 * INVALID_ARGUMENT when x-client-id is not a UUID or x-client-role is not a known role
 * (a role without a client id, or an id without a role, is refused too).
 */
int fsr_caller_of(fsr_call *call, fsr_caller *out);

/* The owner to scope queries by: the caller's id, or NULL (admin and internal see all). */
static inline const char *fsr_caller_scope(const fsr_caller *c)
{
    return c->role == FSR_ROLE_CLIENT || c->role == FSR_ROLE_DATA ? c->client_id : NULL;
}

/*
 * An authorization policy for fsr_app_config.authorize (defense in depth behind the
 * gateway, which already refuses such requests): a caller whose x-client-role is present
 * and is not "admin" or "data" -- a "client", or anything unknown -- may call only methods
 * marked NO_SIDE_EFFECTS (FSR_M_NO_SIDE_EFFECTS) and the methods named in |open| (|n_open|
 * method names, e.g. stateless calculations).  A call without x-client-role (an internal
 * caller) may call everything.  Returns FSR_OK, or FSR_PERMISSION_DENIED with a static
 * message in *|message|.
 */
fsr_code fsr_authorize_client_reads(const fsr_call *call, const char *const *open, size_t n_open,
                                    const char **message);

#endif /* FSR_HANDLER_H */
