/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the gRPC wire helpers of lib/grpc_frame.c.  The input is read four ways:
 *
 *  - as a stream of length-prefixed messages, split exactly as the server's dispatch() and
 *    the client's call_on_data() do (prefix, flag check, length against the remaining bytes
 *    and the message limit); each prefix written back must give the same 5 bytes;
 *  - as a grpc-timeout header value: a parsed value formats and re-parses to no less;
 *  - as a grpc-message: percent-encoding then decoding gives the input back, and decoding
 *    arbitrary text into a buffer of any size stays inside it;
 *  - as binary metadata: base64 encode/decode round-trips, and decoding arbitrary text into an
 *    exactly sized buffer stays inside it.
 *
 * Every output buffer is malloc()ed at its exact size so AddressSanitizer sees any overrun.
 */
#include "fsr/grpc_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stream(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (size - off >= FSR_GRPC_PREFIX_LEN) {
        int compressed = -1;
        uint32_t len = 0;
        if (fsr_grpc_prefix_parse(data + off, &compressed, &len) != 0) {
            if (data[off] <= 1)
                abort(); /* a valid flag byte was refused */
            return;
        }
        if (compressed != data[off])
            abort();
        uint8_t again[FSR_GRPC_PREFIX_LEN];
        fsr_grpc_prefix_write(again, len);
        if (memcmp(again + 1, data + off + 1, FSR_GRPC_PREFIX_LEN - 1) != 0)
            abort();
        off += FSR_GRPC_PREFIX_LEN;
        if (len > FSR_DEFAULT_MAX_MESSAGE || len > size - off)
            return; /* RESOURCE_EXHAUSTED / truncated, as the server answers */
        off += len;
    }
}

static void check_timeout(const uint8_t *data, size_t size)
{
    int64_t us = -1;
    if (fsr_grpc_timeout_parse((const char *)data, size, &us) != 0)
        return;
    if (us < 0)
        abort();
    char out[10];
    size_t n = fsr_grpc_timeout_format(us, out);
    if (n < 2 || n > 9 || strlen(out) != n)
        abort();
    int64_t back = -1;
    if (fsr_grpc_timeout_parse(out, n, &back) != 0)
        abort();
    if (us > 0 && back < us)
        abort(); /* a deadline may round up, never down */
}

static void check_percent(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t need = fsr_percent_encode(in, size, NULL, 0);
    if (need < size || need > 3 * size)
        abort();
    char *enc = malloc(need + 1);
    if (fsr_percent_encode(in, size, enc, need + 1) != need || enc[need] != '\0')
        abort();
    char *dec = malloc(need + 1);
    size_t got = fsr_percent_decode(enc, need, dec, need + 1);
    if (got != size || memcmp(dec, in, size) != 0)
        abort();
    free(dec);
    /* Short buffers: the encoder stops at a whole character, the decoder at |cap|. */
    size_t cap = size / 2;
    char *small = malloc(cap + 1);
    fsr_percent_encode(in, size, small, cap);
    fsr_percent_decode(in, size, small, cap);
    free(small);
    free(enc);
}

static void check_base64(const uint8_t *data, size_t size)
{
    size_t need = fsr_base64_encode(data, size, NULL, 0);
    char *enc = malloc(need + 1);
    if (fsr_base64_encode(data, size, enc, need + 1) != need || strlen(enc) != need)
        abort();
    uint8_t *dec = malloc(size + 1);
    if (fsr_base64_decode(enc, need, dec, size) != size || memcmp(dec, data, size) != 0)
        abort();
    /* Unpadded, as gRPC peers may send it. */
    size_t unpadded = need;
    while (unpadded > 0 && enc[unpadded - 1] == '=')
        unpadded--;
    if (fsr_base64_decode(enc, unpadded, dec, size) != size || memcmp(dec, data, size) != 0)
        abort();
    free(dec);
    free(enc);
    /* Arbitrary text into a buffer of exactly the size the text could decode to. */
    size_t cap = size / 4 * 3 + 2;
    uint8_t *out = malloc(cap);
    size_t n = fsr_base64_decode((const char *)data, size, out, cap);
    if (n != (size_t)-1 && n > cap)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_stream(data, size);
    check_timeout(data, size);
    check_percent(data, size);
    check_base64(data, size);
    /* Metadata key rules on the input as a C string. */
    char *key = malloc(size + 1);
    memcpy(key, data, size);
    key[size] = '\0';
    (void)fsr_md_is_binary(key);
    (void)fsr_md_key_is_custom(key);
    free(key);
    return 0;
}
