/* SPDX-License-Identifier: MIT */
/*
 * The REST route table, generated from google.api.http annotations by protoc-gen-fsr
 * (gen/), consumed by the gateway.  Generated files define |fsr_routes| and |fsr_n_routes|.
 */
#ifndef FSR_ROUTE_H
#define FSR_ROUTE_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct fsr_route {
    const char *http_method;   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern;       /* "/portfolios/{id}/constituents/{constituent_id}" */
    const char *body;          /* "" no body, "*" whole request message, or a field name */
    const char *response_body; /* "" whole response, or a field name */
    const char *service;       /* "equity.v1.EquityService" (full proto name) */
    const char *method;        /* "GetEquity" */
    const char *path;          /* "/equity.v1.EquityService/GetEquity" */
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    unsigned flags; /* FSR_M_* of the method (idempotent, server stream) */
} fsr_route;

extern const fsr_route fsr_routes[];
extern const size_t fsr_n_routes;

/* The OpenAPI 3 document generated from the same protos (NUL-terminated JSON). */
extern const char fsr_openapi_json[];
extern const size_t fsr_openapi_json_len;

#endif /* FSR_ROUTE_H */
