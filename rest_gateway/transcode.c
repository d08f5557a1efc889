/* SPDX-License-Identifier: MIT */
/*
 * HTTP request → protobuf request (body, query, path variables), and gRPC status → the
 * REST error body.  Pure functions over the descriptors: no I/O, so the unit test drives
 * them directly.
 */
#define _GNU_SOURCE /* strcasestr */
#include "gateway.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "fsr/json.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

void gw_error_set(gw_error *err, int http, fsr_code code, const char *field,
                  const char *description, const char *fmt, ...)
{
    err->http = http != 0 ? http : fsr_code_http_status(code);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    snprintf(err->field, sizeof(err->field), "%s", field != NULL ? field : "");
    snprintf(err->description, sizeof(err->description), "%s",
             description != NULL ? description : "");
}

/* ---- Content-Type --------------------------------------------------------------------- */

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/*
 * True for "application/json", optionally with parameters; a charset parameter must be
 * utf-8 (quoted or not, any case), since JSON text is UTF-8 (RFC 8259 §8.1).
 */
static bool content_type_is_json(const char *ct)
{
    static const char mt[] = "application/json";
    if (ct == NULL)
        return false;
    ct = skip_ows(ct);
    if (strncasecmp(ct, mt, sizeof(mt) - 1) != 0)
        return false;
    const char *p = skip_ows(ct + sizeof(mt) - 1);
    while (*p == ';') {
        p = skip_ows(p + 1);
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            return *p == '\0'; /* a stray ";" at the end is tolerated */
        const char *name_end = eq;
        while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
        const char *v = skip_ows(eq + 1);
        const char *vend;
        bool quoted = *v == '"';
        if (quoted) {
            v++;
            vend = strchr(v, '"');
            if (vend == NULL)
                return false;
        } else {
            vend = v + strcspn(v, "; \t");
        }
        if ((size_t)(name_end - p) == 7 && strncasecmp(p, "charset", 7) == 0) {
            size_t vl = (size_t)(vend - v);
            if (!((vl == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
                  (vl == 4 && strncasecmp(v, "utf8", 4) == 0)))
                return false;
        }
        p = skip_ows(quoted ? vend + 1 : vend);
    }
    return *p == '\0';
}

/* ---- path variables ------------------------------------------------------------------- */

static size_t scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 0;
    }
}

/* Finds the message holding the leaf of dotted |path| in |msg|, or NULL if not reached. */
static const ProtobufCMessage *leaf_parent(const ProtobufCMessage *msg, const char *path,
                                           const ProtobufCFieldDescriptor **leaf)
{
    char name[128];
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(name))
            return NULL;
        memcpy(name, path, n);
        name[n] = '\0';
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
        if (fd == NULL)
            return NULL;
        if (dot == NULL) {
            *leaf = fd;
            return msg;
        }
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE || fd->label == PROTOBUF_C_LABEL_REPEATED)
            return NULL;
        const ProtobufCMessage *sub =
            *(const ProtobufCMessage *const *)((const char *)msg + fd->offset);
        if (sub == NULL)
            return NULL;
        msg = sub;
        path = dot + 1;
    }
}

/*
 * True when the field at |path| already holds a non-default value different from what
 * |value| sets it to: the body (or query) disagrees with the path.  Unknown fields and
 * types without a simple comparison are left to fsr_pb_set_field_from_string().
 */
static bool path_var_conflicts(const ProtobufCMessage *msg, const char *path, const char *value,
                               ProtobufCAllocator *alloc)
{
    const ProtobufCFieldDescriptor *fd = NULL;
    const ProtobufCMessage *parent = leaf_parent(msg, path, &fd);
    if (parent == NULL || fd->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    const char *slot = (const char *)parent + fd->offset;
    if (fd->type == PROTOBUF_C_TYPE_STRING) {
        const char *cur = *(const char *const *)slot;
        return cur != NULL && cur[0] != '\0' && strcmp(cur, value) != 0;
    }
    size_t sz = scalar_size(fd->type);
    if (sz == 0)
        return false;
    static const char zero[8];
    if (memcmp(slot, zero, sz) == 0)
        return false; /* default: not given */
    /* Convert |value| the way the setter will, in a scratch message of the same type. */
    ProtobufCMessage *tmp;
    if (fsr_pb_new(parent->descriptor, alloc, &tmp) != 0)
        return false;
    fsr_json_error jerr;
    if (fsr_pb_set_field_from_string(tmp, fd->name, value, alloc, &jerr) != 0)
        return false; /* the real setter reports the bad value */
    return memcmp(slot, (const char *)tmp + fd->offset, sz) != 0;
}

/*
 * POST /imports/prices also takes its CSV as a `text/csv` body (equity.proto): the body then
 * becomes the request's `csv` field and `exchange` may come as a query parameter.  True when
 * |ct| is text/csv (any parameters) and |rt| is that route.
 */
static bool csv_body_route(const fsr_route *rt, const char *ct)
{
    static const char mt[] = "text/csv";
    if (ct == NULL || rt->input == NULL ||
        strcmp(rt->input->name, "equity.v1.ImportPricesRequest") != 0)
        return false;
    ct = skip_ows(ct);
    if (strncasecmp(ct, mt, sizeof(mt) - 1) != 0)
        return false;
    const char *p = skip_ows(ct + sizeof(mt) - 1);
    return *p == '\0' || *p == ';';
}

/* A dotted proto field path in lowerCamelCase ("terms.coupon_rate" -> "terms.couponRate"). */
static void camel_path(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    bool up = false;
    for (; *in != '\0' && o + 1 < cap; in++) {
        if (*in == '_') {
            up = true;
            continue;
        }
        char c = *in;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        out[o++] = c;
    }
    out[o] = '\0';
}

/* ---- the request ---------------------------------------------------------------------- */

int gw_build_request(const fsr_route *rt, const gw_match *m, const gw_http_in *in, fsr_arena *a,
                     ProtobufCMessage **out, gw_error *err)
{
    ProtobufCAllocator *alloc = fsr_arena_pb_allocator(a);
    ProtobufCMessage *msg = NULL;
    fsr_json_error jerr;
    bool whole_body = strcmp(rt->body, "*") == 0;
    bool csv_body = in->body_len > 0 && csv_body_route(rt, in->content_type);

    /* 1. The body. */
    if (csv_body) {
        if (memchr(in->body, '\0', in->body_len) != NULL) {
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, "csv", "must be text",
                         "csv: must be text (a NUL byte in the body)");
            return -1;
        }
        whole_body = false; /* fields other than csv come as query parameters */
    } else if (in->body_len > 0) {
        if (rt->body[0] == '\0') {
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, NULL, NULL,
                         "%s %s takes no request body; send fields as query parameters",
                         rt->http_method, rt->pattern);
            return -1;
        }
        if (!content_type_is_json(in->content_type)) {
            gw_error_set(err, 415, FSR_INVALID_ARGUMENT, NULL, NULL,
                         "Content-Type must be application/json (charset utf-8), not \"%.100s\"",
                         in->content_type != NULL ? in->content_type : "");
            return -1;
        }
    }
    int rv;
    if (csv_body) {
        rv = fsr_pb_new(rt->input, alloc, &msg);
        if (rv == 0)
            rv = fsr_pb_set_field_from_string(
                msg, "csv", fsr_arena_strndup(a, in->body, in->body_len), alloc, &jerr);
    } else if (whole_body && in->body_len > 0) {
        rv = fsr_json_to_pb(rt->input, in->body, in->body_len, alloc, &msg, &jerr);
    } else {
        rv = fsr_pb_new(rt->input, alloc, &msg);
        if (rv == 0 && in->body_len > 0)
            rv = fsr_json_merge_pb(msg, rt->body, in->body, in->body_len, alloc, &jerr);
    }
    if (rv != 0) {
        if (rv != FSR_E_PROTOCOL) {
            gw_error_set(err, 500, FSR_INTERNAL, NULL, NULL, "out of memory");
            return -1;
        }
        if (strncmp(jerr.message, "unknown field", 13) == 0)
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, jerr.field, jerr.message, "%s",
                         jerr.message);
        else if (jerr.field[0] != '\0')
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, jerr.field, jerr.message, "%s: %s",
                         jerr.field, jerr.message);
        else
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, NULL, NULL, "invalid request body: %s",
                         jerr.message);
        return -1;
    }

    /* 2. Query parameters. */
    size_t qlen = strlen(in->query);
    if (qlen > 0) {
        if (whole_body) {
            /* Name the first parameter, as the client wrote it (before any '='). */
            size_t kl = strcspn(in->query, "=&");
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(kl < 120 ? kl : 120), in->query);
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, key,
                         "this route takes its fields in the JSON body",
                         "unknown query parameter \"%s\": %s %s takes its fields in the JSON body",
                         key, rt->http_method, rt->pattern);
            return -1;
        }
        rv = fsr_pb_merge_query(msg, in->query, qlen, alloc, &jerr);
        if (rv != 0) {
            if (strncmp(jerr.message, "unknown field", 13) == 0)
                gw_error_set(err, 400, FSR_INVALID_ARGUMENT, jerr.field, "unknown query parameter",
                             "unknown query parameter \"%s\"", jerr.field);
            else
                gw_error_set(err, 400, FSR_INVALID_ARGUMENT, jerr.field, jerr.message,
                             "query parameter %s: %s", jerr.field, jerr.message);
            return -1;
        }
    }

    /* 3. Path variables: last, and authoritative. */
    for (size_t i = 0; i < m->n_vars; i++) {
        const char *value = m->vars[i].value;
        char name[128];
        camel_path(m->vars[i].name, name, sizeof(name));
        if (path_var_conflicts(msg, m->vars[i].name, value, alloc)) {
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, name,
                         "differs from the value in the URL path",
                         "%s: the request sets a value different from the URL path's", name);
            return -1;
        }
        if (fsr_pb_set_field_from_string(msg, m->vars[i].name, value, alloc, &jerr) != 0) {
            gw_error_set(err, 400, FSR_INVALID_ARGUMENT, jerr.field[0] ? jerr.field : name,
                         jerr.message, "path parameter %s: %s", name, jerr.message);
            return -1;
        }
    }
    *out = msg;
    return 0;
}

/* ---- errors --------------------------------------------------------------------------- */

/* The type name of an Any ("google.rpc.BadRequest"), after the last '/'. */
static const char *any_type(const Google__Protobuf__Any *any)
{
    if (any == NULL || any->type_url == NULL)
        return "";
    const char *s = strrchr(any->type_url, '/');
    return s != NULL ? s + 1 : any->type_url;
}

static Google__Rpc__Status *status_unpack(const void *details, size_t len)
{
    if (details == NULL || len == 0)
        return NULL;
    return google__rpc__status__unpack(NULL, len, details);
}

static bool details_say_version_mismatch(const Google__Rpc__Status *st)
{
    for (size_t i = 0; st != NULL && i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        const char *t = any_type(any);
        if (strcmp(t, "google.rpc.ErrorInfo") == 0) {
            Google__Rpc__ErrorInfo *ei =
                google__rpc__error_info__unpack(NULL, any->value.len, any->value.data);
            bool yes =
                ei != NULL && ei->reason != NULL && strcasecmp(ei->reason, "VERSION_MISMATCH") == 0;
            google__rpc__error_info__free_unpacked(ei, NULL);
            if (yes)
                return true;
        } else if (strcmp(t, "google.rpc.PreconditionFailure") == 0) {
            Google__Rpc__PreconditionFailure *pf =
                google__rpc__precondition_failure__unpack(NULL, any->value.len, any->value.data);
            bool yes = false;
            for (size_t j = 0; pf != NULL && j < pf->n_violations; j++)
                if (pf->violations[j]->type != NULL &&
                    strcasecmp(pf->violations[j]->type, "VERSION") == 0)
                    yes = true;
            google__rpc__precondition_failure__free_unpacked(pf, NULL);
            if (yes)
                return true;
        }
    }
    return false;
}

int gw_http_status(fsr_code code, const char *message, const void *details, size_t details_len)
{
    if (code != FSR_FAILED_PRECONDITION)
        return fsr_code_http_status(code);
    if (message != NULL &&
        (strcasestr(message, "version mismatch") != NULL || strcasestr(message, "stale version")))
        return 412;
    Google__Rpc__Status *st = status_unpack(details, details_len);
    bool yes = details_say_version_mismatch(st);
    google__rpc__status__free_unpacked(st, NULL);
    return yes ? 412 : fsr_code_http_status(code);
}

static json_t *jstr(const char *s)
{
    /* Upstream text is UTF-8 by contract; json_string() refuses anything else. */
    json_t *v = json_string(s != NULL ? s : "");
    return v != NULL ? v : json_string("");
}

/* "1.500s", as the proto3 JSON mapping writes a Duration. */
static json_t *duration_json(const Google__Protobuf__Duration *d)
{
    char buf[48];
    int64_t s = d->seconds;
    int32_t ns = d->nanos;
    const char *sign = (s < 0 || ns < 0) ? "-" : "";
    unsigned long long as = (unsigned long long)(s < 0 ? -s : s);
    unsigned an = (unsigned)(ns < 0 ? -ns : ns);
    if (an == 0)
        snprintf(buf, sizeof(buf), "%s%llus", sign, as);
    else if (an % 1000000 == 0)
        snprintf(buf, sizeof(buf), "%s%llu.%03us", sign, as, an / 1000000);
    else if (an % 1000 == 0)
        snprintf(buf, sizeof(buf), "%s%llu.%06us", sign, as, an / 1000);
    else
        snprintf(buf, sizeof(buf), "%s%llu.%09us", sign, as, an);
    return json_string(buf);
}

static void append_details(json_t *arr, const Google__Rpc__Status *st)
{
    for (size_t i = 0; st != NULL && i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        const char *t = any_type(any);
        size_t n = any->value.len;
        const uint8_t *d = any->value.data;
        if (strcmp(t, "google.rpc.BadRequest") == 0) {
            Google__Rpc__BadRequest *br = google__rpc__bad_request__unpack(NULL, n, d);
            for (size_t j = 0; br != NULL && j < br->n_field_violations; j++) {
                const Google__Rpc__BadRequest__FieldViolation *fv = br->field_violations[j];
                json_array_append_new(arr, json_pack("{s:o,s:o}", "field", jstr(fv->field),
                                                     "description", jstr(fv->description)));
            }
            google__rpc__bad_request__free_unpacked(br, NULL);
        } else if (strcmp(t, "google.rpc.PreconditionFailure") == 0) {
            Google__Rpc__PreconditionFailure *pf =
                google__rpc__precondition_failure__unpack(NULL, n, d);
            for (size_t j = 0; pf != NULL && j < pf->n_violations; j++) {
                const Google__Rpc__PreconditionFailure__Violation *v = pf->violations[j];
                json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "type", jstr(v->type),
                                                     "subject", jstr(v->subject), "description",
                                                     jstr(v->description)));
            }
            google__rpc__precondition_failure__free_unpacked(pf, NULL);
        } else if (strcmp(t, "google.rpc.ErrorInfo") == 0) {
            Google__Rpc__ErrorInfo *ei = google__rpc__error_info__unpack(NULL, n, d);
            if (ei != NULL) {
                json_t *md = json_object();
                for (size_t j = 0; j < ei->n_metadata; j++)
                    if (ei->metadata[j]->key != NULL)
                        json_object_set_new(md, ei->metadata[j]->key, jstr(ei->metadata[j]->value));
                json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "reason", jstr(ei->reason),
                                                     "domain", jstr(ei->domain), "metadata", md));
            }
            google__rpc__error_info__free_unpacked(ei, NULL);
        } else if (strcmp(t, "google.rpc.RetryInfo") == 0) {
            Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, n, d);
            if (ri != NULL && ri->retry_delay != NULL)
                json_array_append_new(
                    arr, json_pack("{s:o}", "retryDelay", duration_json(ri->retry_delay)));
            google__rpc__retry_info__free_unpacked(ri, NULL);
        } else if (strcmp(t, "google.rpc.ResourceInfo") == 0) {
            Google__Rpc__ResourceInfo *ri = google__rpc__resource_info__unpack(NULL, n, d);
            if (ri != NULL)
                json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "resourceType",
                                                     jstr(ri->resource_type), "resourceName",
                                                     jstr(ri->resource_name), "description",
                                                     jstr(ri->description)));
            google__rpc__resource_info__free_unpacked(ri, NULL);
        }
        /* DebugInfo (stack traces) and unknown types never reach clients. */
    }
}

char *gw_error_json(fsr_code code, const char *message, const char *field, const char *description,
                    const void *details, size_t details_len, size_t *len)
{
    json_t *arr = json_array();
    if (field != NULL)
        json_array_append_new(
            arr, json_pack("{s:o,s:o}", "field", jstr(field), "description", jstr(description)));
    Google__Rpc__Status *st = status_unpack(details, details_len);
    append_details(arr, st);
    google__rpc__status__free_unpacked(st, NULL);
    json_t *root =
        json_pack("{s:i,s:o,s:o}", "code", (int)code, "message", jstr(message), "details", arr);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL) /* only on out of memory */
        abort();
    if (len != NULL)
        *len = strlen(s);
    return s;
}
