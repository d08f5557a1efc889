/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the gateway's JSON→protobuf transcoding (lib/json_pb.c) and back.
 *
 * Input: byte 0 picks the request message (the table below: the REST bodies that carry the
 * most structure), byte 1 the output options, the rest is the request body.  When byte 1
 * has bit 0x80 set the rest is a URL query string instead (fsr_pb_merge_query, the GET
 * routes' path).
 *
 * Whatever parses must render (fsr_pb_to_json may refuse only what it documents: invalid
 * UTF-8 and out-of-range times), the rendering must parse again to the same message, and the
 * protobuf encoding must round-trip too.  A failed check aborts, which libFuzzer reports.
 */
#include "fsr/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "equity/v1/equity.pb-c.h"
#include "fixed_income/v1/fixed_income.pb-c.h"
#include "portfolio/v1/portfolio.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Append only: the committed corpus selects entries by index. */
static const ProtobufCMessageDescriptor *const descs[] = {
    &portfolio__v1__create_portfolio_request__descriptor,
    &portfolio__v1__add_transaction_request__descriptor,
    &equity__v1__upsert_prices_request__descriptor,
    &fixed_income__v1__create_bond_request__descriptor,
    &fixed_income__v1__bond_analytics_request__descriptor,
    &fixed_income__v1__batch_analytics_request__descriptor,
    &equity__v1__series_analytics_request__descriptor,
    &portfolio__v1__twr_request__descriptor,
    &portfolio__v1__xirr_request__descriptor,
    &portfolio__v1__attribution_request__descriptor,
    &portfolio__v1__rebalance_plan_request__descriptor,
    &portfolio__v1__calculate_request__descriptor,
    &portfolio__v1__rebalance_request__descriptor,
};
#define N_DESCS (sizeof(descs) / sizeof(descs[0]))

static void check_error(const fsr_json_error *err)
{
    if (memchr(err->field, '\0', sizeof(err->field)) == NULL ||
        memchr(err->message, '\0', sizeof(err->message)) == NULL)
        abort();
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    if (protobuf_c_message_pack(m, buf) != *len)
        abort();
    return buf;
}

/* |msg| → JSON → message → JSON: both renderings and both encodings must be equal. */
static void round_trip(const ProtobufCMessageDescriptor *desc, ProtobufCMessage *msg,
                       const fsr_json_opts *opts)
{
    char *js = NULL;
    size_t jlen = 0;
    fsr_json_error err;
    memset(&err, 0x55, sizeof(err));
    if (fsr_pb_to_json(msg, opts, &js, &jlen, &err) != 0) {
        check_error(&err);
        return; /* invalid UTF-8 in a string, a time out of range: refused, as documented */
    }
    if (strlen(js) != jlen)
        abort();
    ProtobufCMessage *again = NULL;
    if (fsr_json_to_pb(desc, js, jlen, NULL, &again, &err) != 0) {
        fprintf(stderr, "rendered JSON does not parse back: %s: %s\n%s\n", err.field, err.message,
                js);
        abort();
    }
    char *js2 = NULL;
    size_t jlen2 = 0;
    if (fsr_pb_to_json(again, opts, &js2, &jlen2, &err) != 0 || jlen2 != jlen ||
        memcmp(js, js2, jlen) != 0) {
        fprintf(stderr, "JSON round trip differs:\n%s\n%s\n", js, js2 ? js2 : "(refused)");
        abort();
    }
    size_t l1, l2;
    uint8_t *b1 = pack(msg, &l1), *b2 = pack(again, &l2);
    ProtobufCMessage *un = protobuf_c_message_unpack(desc, NULL, l1, b1);
    if (un == NULL)
        abort();
    protobuf_c_message_free_unpacked(un, NULL);
    free(b1);
    free(b2);
    free(js2);
    protobuf_c_message_free_unpacked(again, NULL);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const ProtobufCMessageDescriptor *desc = descs[data[0] % N_DESCS];
    fsr_json_opts opts = { .flags = data[1] & 0x7u };
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    fsr_json_error err;
    memset(&err, 0x55, sizeof(err));
    ProtobufCMessage *msg = NULL;
    if (data[1] & 0x80u) {
        if (fsr_pb_new(desc, NULL, &msg) != 0)
            abort();
        if (fsr_pb_merge_query(msg, text, len, NULL, &err) != 0)
            check_error(&err);
    } else if (fsr_json_to_pb(desc, text, len, NULL, &msg, &err) != 0) {
        check_error(&err);
        return 0;
    }
    round_trip(desc, msg, &opts);
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}
