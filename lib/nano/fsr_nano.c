/* SPDX-License-Identifier: MIT */
/* The nanopb client SDK: gRPC framing of nanopb messages, without I/O or allocation. */
#include "fsr_nano.h"

#include <errno.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "fsr/status.h"

int fsr_nano_encoded_size(const pb_msgdesc_t *fields, const void *msg, size_t *len)
{
    size_t n;
    if (!pb_get_encoded_size(&n, fields, msg))
        return FSR_E_PROTOCOL;
    if (n > UINT32_MAX)
        return FSR_E_TOO_LARGE;
    *len = FSR_NANO_PREFIX_LEN + n;
    return 0;
}

int fsr_nano_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t cap,
                    size_t *len)
{
    if (cap < FSR_NANO_PREFIX_LEN)
        return FSR_E_TOO_LARGE;
    /*
     * Encode straight after the prefix, then fill the prefix in: one pass, no sizing pass.
     * nanopb reports a full buffer and an invalid message the same way (false), so tell
     * them apart afterwards by sizing the message.
     */
    pb_ostream_t os = pb_ostream_from_buffer(buf + FSR_NANO_PREFIX_LEN, cap - FSR_NANO_PREFIX_LEN);
    if (!pb_encode(&os, fields, msg)) {
        size_t need;
        int rv = fsr_nano_encoded_size(fields, msg, &need);
        if (rv != 0)
            return rv;
        return need > cap ? FSR_E_TOO_LARGE : FSR_E_PROTOCOL;
    }
    if (os.bytes_written > UINT32_MAX)
        return FSR_E_TOO_LARGE;
    uint32_t n = (uint32_t)os.bytes_written;
    buf[0] = 0; // not compressed
    buf[1] = (uint8_t)(n >> 24);
    buf[2] = (uint8_t)(n >> 16);
    buf[3] = (uint8_t)(n >> 8);
    buf[4] = (uint8_t)n;
    *len = FSR_NANO_PREFIX_LEN + os.bytes_written;
    return 0;
}

int fsr_nano_peek(const uint8_t *buf, size_t len, size_t *msg_len)
{
    if (len < FSR_NANO_PREFIX_LEN)
        return -EAGAIN;
    if (buf[0] != 0)
        return FSR_E_PROTOCOL;
    size_t n = (size_t)buf[1] << 24 | (size_t)buf[2] << 16 | (size_t)buf[3] << 8 | buf[4];
    *msg_len = FSR_NANO_PREFIX_LEN + n;
    return len < *msg_len ? -EAGAIN : 0;
}

int fsr_nano_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *buf, size_t len,
                    size_t *consumed)
{
    size_t total;
    int rv = fsr_nano_peek(buf, len, &total);
    if (rv != 0)
        return rv;
    // pb_decode() zeroes |msg| first; string and repeated bounds come from the .options.
    pb_istream_t is =
        pb_istream_from_buffer(buf + FSR_NANO_PREFIX_LEN, total - FSR_NANO_PREFIX_LEN);
    if (!pb_decode(&is, fields, msg))
        return FSR_E_PROTOCOL;
    *consumed = total;
    return 0;
}
