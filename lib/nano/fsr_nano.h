/* SPDX-License-Identifier: MIT */
/*
 * The nanopb client SDK: gRPC message framing for nanopb-encoded messages, with no I/O and
 * no allocation.  Messages are the nanopb types generated from the protos with the bounds
 * in gen/nanopb/<proto>.options (every string and repeated field has a fixed size, so a message
 * is a plain struct).  The transport (HTTP/2, headers, trailers) is the caller's.
 *
 * A gRPC message on the wire is a 5-byte prefix -- a compressed flag (always 0 here: we
 * never negotiate compression) and the payload length, 4 bytes big-endian -- followed by
 * the protobuf payload.
 */
#ifndef FSR_NANO_H
#define FSR_NANO_H

#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "common.pb.h"
#include "equity.pb.h"
#include "fixed_income.pb.h"

/* Bytes of the gRPC message prefix. */
#define FSR_NANO_PREFIX_LEN 5

/* gRPC paths of the calls the SDK's messages are for. */
#define FSR_NANO_PATH_BOND_ANALYTICS "/fixed_income.v1.FixedIncomeService/BondAnalytics"
#define FSR_NANO_PATH_GET_QUOTE      "/equity.v1.EquityService/GetQuote"

/*
 * Encodes |msg|, a nanopb message of type |fields| (e.g. fixed_income_v1_BondAnalyticsRequest
 * with &fixed_income_v1_BondAnalyticsRequest_msg), as one gRPC message into |buf| of |cap|
 * bytes, and sets *|len| to the bytes written.  Returns 0, or one of the following negative
 * codes (|buf| contents then unspecified, *|len| untouched):
 *   FSR_E_TOO_LARGE  |cap| is too small (size the buffer with fsr_nano_encoded_size());
 *   FSR_E_PROTOCOL   nanopb refused the message (e.g. a string not NUL-terminated).
 */
int fsr_nano_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t cap,
                    size_t *len);

/*
 * Sets *|len| to the bytes fsr_nano_encode() would write for |msg| (prefix included).
 * Returns 0, or FSR_E_PROTOCOL if nanopb refused the message.
 */
int fsr_nano_encoded_size(const pb_msgdesc_t *fields, const void *msg, size_t *len);

/*
 * Reads the prefix at |buf| (|len| bytes available) and sets *|msg_len| to the length of
 * the whole gRPC message (prefix included).  Returns 0, or:
 *   -EAGAIN         fewer than FSR_NANO_PREFIX_LEN bytes, or the payload is incomplete
 *                   (*|msg_len| is still set once the prefix is complete);
 *   FSR_E_PROTOCOL  the compressed flag is set (compression is never negotiated).
 */
int fsr_nano_peek(const uint8_t *buf, size_t len, size_t *msg_len);

/*
 * Decodes the gRPC message at the start of |buf| (|len| bytes) into |msg|, a nanopb
 * message of type |fields| (all of |msg| is overwritten; fields absent on the wire are
 * zero).  Sets *|consumed| to the bytes used, so several messages of a stream can be
 * decoded one after the other.  Returns 0, or:
 *   -EAGAIN         |buf| does not hold the whole message yet;
 *   FSR_E_PROTOCOL  a compressed message, or a payload nanopb cannot decode: malformed, or
 *                   a string or repeated field longer than its bound in the .options file.
 */
int fsr_nano_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *buf, size_t len,
                    size_t *consumed);

#endif /* FSR_NANO_H */
