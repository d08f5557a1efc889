/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: protobuf decoding of every message a service receives or a client reads.  The
 * input is unpacked as the request and the response type of every method of every service
 * (taken from the generated service descriptors, so a new RPC is covered without editing
 * this file): once into a call arena, as the server's dispatch() does, and once with malloc,
 * then freed.  A message that decodes must re-encode to something that decodes, and must
 * either render as JSON (what the gateway does with a reply) or be refused as documented.
 */
#include "fsr/json.h"
#include "fsr/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "equity/v1/equity.pb-c.h"
#include "fixed_income/v1/fixed_income.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "jobs/v1/jobs.pb-c.h"
#include "portfolio/v1/portfolio.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
    &equity__v1__equity_service__descriptor,
    &equity__v1__equity_analytics_service__descriptor,
    &fixed_income__v1__fixed_income_service__descriptor,
    &jobs__v1__job_service__descriptor,
    &portfolio__v1__portfolio_service__descriptor,
    &portfolio__v1__client_service__descriptor,
    &portfolio__v1__holdings_service__descriptor,
    &portfolio__v1__portfolio_analytics_service__descriptor,
    &grpc__health__v1__health__descriptor,
};

#define MAX_TYPES 512
static const ProtobufCMessageDescriptor *types[MAX_TYPES];
static size_t n_types;

static void add_type(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < n_types; i++)
        if (types[i] == d)
            return;
    if (n_types == MAX_TYPES)
        abort();
    types[n_types++] = d;
}

static void collect(void)
{
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
        const ProtobufCServiceDescriptor *sd = services[s];
        for (unsigned m = 0; m < sd->n_methods; m++) {
            add_type(sd->methods[m].input);
            add_type(sd->methods[m].output);
        }
    }
}

static void decode(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    fsr_arena arena;
    fsr_arena_init(&arena);
    ProtobufCMessage *a = protobuf_c_message_unpack(d, fsr_arena_pb_allocator(&arena), size, data);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
    if ((a == NULL) != (m == NULL))
        abort(); /* the allocator must not change what decodes */
    if (m != NULL) {
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(len + 1);
        if (protobuf_c_message_pack(m, buf) != len)
            abort();
        ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, len, buf);
        if (again == NULL)
            abort();
        protobuf_c_message_free_unpacked(again, NULL);
        free(buf);
        char *js = NULL;
        fsr_json_error err;
        if (fsr_pb_to_json(a, NULL, &js, NULL, &err) == 0)
            free(js);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    fsr_arena_dispose(&arena); /* arena messages are never freed one by one */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (n_types == 0)
        collect();
    for (size_t i = 0; i < n_types; i++)
        decode(types[i], data, size);
    return 0;
}
