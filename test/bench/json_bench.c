/* SPDX-License-Identifier: MIT */
/*
 * json_bench: JSON <-> protobuf-c transcoding throughput for a typical ~10-field request
 * (fsrtest.v1.Typical), the way the gateway does it: parse into a per-request arena, render
 * into malloc'd text.  Usage: json_bench [seconds per direction, default 1].
 */
#include "fsr/json.h"
#include "fsr/mem.h"

#include "json_test.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char typical_json[] =
    "{\"id\":\"3f2b6c1e-8a4d-4f7e-9b1a-2c3d4e5f6a7b\",\"symbol\":\"AAPL\","
    "\"name\":\"Apple Inc.\",\"color\":\"COLOR_RED\",\"lotSize\":\"100\","
    "\"couponRate\":0.0425,\"frequency\":2,\"active\":true,"
    "\"createdAt\":\"2024-01-02T03:04:05.123Z\",\"bars\":[{\"date\":\"2021-01-04\","
    "\"open\":131.42,\"high\":133.61,\"low\":126.76,\"close\":129.41,\"volume\":\"143301900\"}]}";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    size_t len = strlen(typical_json);
    fsr_json_error err;
    fsr_arena arena;
    fsr_arena_init(&arena);

    // JSON -> message, one arena per request
    long n = 0;
    double t0 = now(), t1;
    do {
        for (int i = 0; i < 1000; i++, n++) {
            ProtobufCMessage *m;
            if (fsr_json_to_pb(&fsrtest__v1__typical__descriptor, typical_json, len,
                               fsr_arena_pb_allocator(&arena), &m, &err) != 0) {
                fprintf(stderr, "parse failed: [%s] %s\n", err.field, err.message);
                return 1;
            }
            fsr_arena_dispose(&arena);
        }
        t1 = now();
    } while (t1 - t0 < secs);
    double parse_ops = (double)n / (t1 - t0);

    // message -> JSON
    ProtobufCMessage *m;
    if (fsr_json_to_pb(&fsrtest__v1__typical__descriptor, typical_json, len, NULL, &m, &err) != 0)
        return 1;
    char *out = NULL;
    size_t out_len = 0;
    n = 0;
    t0 = now();
    do {
        for (int i = 0; i < 1000; i++, n++) {
            free(out);
            if (fsr_pb_to_json(m, NULL, &out, &out_len, &err) != 0) {
                fprintf(stderr, "render failed: [%s] %s\n", err.field, err.message);
                return 1;
            }
        }
        t1 = now();
    } while (t1 - t0 < secs);
    double render_ops = (double)n / (t1 - t0);
    if (strcmp(out, typical_json) != 0) {
        fprintf(stderr, "round trip differs:\n%s\n%s\n", typical_json, out);
        return 1;
    }
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);

    printf("message: fsrtest.v1.Typical, %zu bytes of JSON, 10 fields (one nested, one "
           "repeated, a Timestamp)\n",
           len);
    printf("json -> pb: %10.0f ops/s (%.2f us/op)\n", parse_ops, 1e6 / parse_ops);
    printf("pb -> json: %10.0f ops/s (%.2f us/op)\n", render_ops, 1e6 / render_ops);
    return 0;
}
