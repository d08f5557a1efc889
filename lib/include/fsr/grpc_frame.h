/* SPDX-License-Identifier: MIT */
/*
 * gRPC wire details shared by server and client: the 5-byte message prefix, grpc-timeout,
 * grpc-message percent-encoding, base64 for "-bin" metadata.  Pure functions, no I/O.
 */
#ifndef FSR_GRPC_FRAME_H
#define FSR_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FSR_GRPC_PREFIX_LEN     5
#define FSR_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)

/* Writes the 5-byte prefix (compressed flag 0, big-endian |len|) into |out|. */
void fsr_grpc_prefix_write(uint8_t out[FSR_GRPC_PREFIX_LEN], uint32_t len);

/*
 * Parses a 5-byte prefix.  Sets *|compressed| (0 or 1) and *|len|.  Returns 0, or
 * FSR_E_PROTOCOL if the flag byte is neither 0 nor 1.
 */
int fsr_grpc_prefix_parse(const uint8_t in[FSR_GRPC_PREFIX_LEN], int *compressed, uint32_t *len);

/*
 * Parses a grpc-timeout value ("100m", "5S", "1H"...: 1-8 ASCII digits then one of
 * H M S m u n) into microseconds (rounded up; saturates at INT64_MAX/2).  Returns 0, or
 * FSR_E_PROTOCOL if malformed.
 */
int fsr_grpc_timeout_parse(const char *s, size_t len, int64_t *us);

/*
 * Formats a timeout of |us| microseconds (> 0) as a grpc-timeout value with at most 8
 * digits, choosing the finest unit that fits and rounding up.  |out| needs 10 bytes.
 * Returns the length written.
 */
size_t fsr_grpc_timeout_format(int64_t us, char out[10]);

/*
 * Percent-encodes |in| for grpc-message: bytes outside 0x20..0x7e and '%' become %XX
 * (uppercase).  Returns the encoded length; writes at most |cap| bytes, NUL-terminated if
 * room.  Call with cap 0 to measure: the result fits in 3*len+1.
 */
size_t fsr_percent_encode(const char *in, size_t len, char *out, size_t cap);

/*
 * Decodes a grpc-message value in place semantics into |out| (|cap| >= len+1).  Invalid
 * escapes are passed through unchanged, as the gRPC spec asks.  Returns the decoded length.
 */
size_t fsr_percent_decode(const char *in, size_t len, char *out, size_t cap);

/* Base64 (standard alphabet; encode pads, decode accepts padded and unpadded). */
size_t fsr_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/* Returns the decoded length, or (size_t)-1 on invalid input. */
size_t fsr_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif /* FSR_GRPC_FRAME_H */
