/* SPDX-License-Identifier: MIT */
/* gRPC custom metadata: ordered key/value pairs, ASCII or binary ("-bin" keys). */
#ifndef FSR_METADATA_H
#define FSR_METADATA_H

#include <stddef.h>

/*
 * One metadata entry.  Keys are lowercase.  For keys ending in "-bin" |value| holds the raw
 * bytes (the runtime base64-encodes and decodes them on the wire); other values are
 * printable ASCII.  Both are borrowed.
 */
typedef struct fsr_md {
    const char *key;
    const char *value;
    size_t value_len;
} fsr_md;

/* True if |key| ends in "-bin". */
int fsr_md_is_binary(const char *key);

/*
 * True if |key| is a header a caller may set as custom metadata: lowercase [0-9a-z_.-],
 * not starting with "grpc-" and not a reserved HTTP/2 header (":path", "content-type",
 * "te", ...).
 */
int fsr_md_key_is_custom(const char *key);

/*
 * Trailer a service adds to an UNAVAILABLE status that it answers itself because a service
 * IT depends on is down or timed out (value: that service, e.g. "fixed_income"); the
 * status message then names the service ("fixed income service unavailable").  Without it
 * UNAVAILABLE means the called service itself could not be reached, and the gateway marks
 * the replica down, may retry elsewhere and answers with the called service's name.
 */
#define FSR_MD_DEPENDENCY_UNAVAILABLE "fsr-dependency-unavailable"

#endif /* FSR_METADATA_H */
