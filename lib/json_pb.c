/* SPDX-License-Identifier: MIT */
/* The proto3 JSON mapping for protobuf-c messages, by descriptor reflection (see fsr/json.h). */
#include "fsr/json.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Layout notes (protobuf-c 1.4.1, proto3):
 *  - Singular scalars have label NONE and no presence flag; singular messages are pointers
 *    (NULL = unset).  proto2 OPTIONAL scalars and bytes have a protobuf_c_boolean has_ flag
 *    at quantifier_offset; we honour it so proto2 messages work too.
 *  - A oneof member carries PROTOBUF_C_FIELD_FLAG_ONEOF; quantifier_offset then points at
 *    the uint32 case, which holds the id of the member set (0: none) and the members share
 *    storage (a union), so a member's slot may only be read when the case names it.
 *  - Repeated fields are (size_t n, T *array); map fields are repeated XxxEntry messages
 *    with key (1) and value (2).  protobuf-c keeps no "map entry" option, so is_map() uses
 *    protoc's naming rule for entry types.
 *
 * Invariant for building messages: at every step the message tree is one that
 * protobuf_c_message_free_unpacked() can release: an array is published with the count of
 * elements already initialised, a sub-message is initialised before it is linked, a oneof
 * case is set only once the member's value is in place, and a string is freed only after its
 * replacement has parsed.  So any failure simply frees the whole tree (or, when merging into
 * the caller's message, leaves it valid).
 */

#define OUT_MAX_DEPTH 256 /* messages nested on output: a guard against runaway recursion */
#define MAX_SEGS      160 /* path segments kept for error messages (deeper ones are dropped) */

#define MEMBER(m, off)  ((void *)((char *)(m) + (off)))
#define CMEMBER(m, off) ((const void *)((const char *)(m) + (off)))
#define CASE_OF(m, fd)  (*(const uint32_t *)CMEMBER((m), (fd)->quantifier_offset))
#define IS_ONEOF(fd)    (((fd)->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0)
#define IS_REPEATED(fd) ((fd)->label == PROTOBUF_C_LABEL_REPEATED)

/* One step of the JSON path of the value being converted, for fsr_json_error.field. */
enum {
    SEG_FIELD,
    SEG_NAME,
    SEG_INDEX,
    SEG_KEY
};
typedef struct seg {
    int kind;
    const char *s; /* SEG_FIELD: proto field name; SEG_NAME/SEG_KEY: bytes as received */
    size_t n;      /* SEG_NAME/SEG_KEY: length; SEG_INDEX: the index */
} seg;

/* Well-known types the mapping renders specially. */
enum wkt {
    WKT_NONE,
    WKT_TIMESTAMP,
    WKT_DURATION,
    WKT_WRAPPER,
    WKT_STRUCT,
    WKT_VALUE,
    WKT_LIST,
    WKT_FIELDMASK,
    WKT_ANY,
};

/* How a textual value is being read. */
enum text_mode {
    TEXT_JSON,  /* a JSON string value: enums by name only, no bools */
    TEXT_KEY,   /* a map key: bools as "true"/"false" */
    TEXT_QUERY, /* a path variable or query parameter: enums by number too, bools 1/0 */
};

typedef struct ctx {
    ProtobufCAllocator *alloc;
    fsr_json_error *err;
    int failed;
    int depth;
    unsigned flags;
    size_t nseg;
    seg segs[MAX_SEGS];
    /* output buffer (malloc) */
    char *buf;
    size_t len;
    size_t cap;
} ctx;

/* One parsed scalar; every member starts at offset 0, so memcpy(slot, &v, elt_size). */
typedef union sval {
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f;
    double d;
    protobuf_c_boolean b;
    int e;
    char *s;
    ProtobufCBinaryData bd;
    void *msg;
} sval;

/* ---- allocation ---- */

static void *sys_alloc(void *data, size_t n)
{
    (void)data;
    return malloc(n);
}

static void sys_free(void *data, void *p)
{
    (void)data;
    free(p);
}

/* The same behaviour as protobuf-c's own (static) default allocator. */
static ProtobufCAllocator sys_allocator = { sys_alloc, sys_free, NULL };

static void ctx_init(ctx *c, ProtobufCAllocator *alloc, fsr_json_error *err)
{
    c->alloc = alloc ? alloc : &sys_allocator;
    c->err = err;
    c->failed = 0;
    c->depth = 0;
    c->flags = 0;
    c->nseg = 0;
    c->buf = NULL;
    c->len = c->cap = 0;
    if (err) {
        err->field[0] = '\0';
        err->message[0] = '\0';
    }
}

static void *pb_alloc(ctx *c, size_t n)
{
    return c->alloc->alloc(c->alloc->allocator_data, n);
}

static void pb_free(ctx *c, void *p)
{
    if (p)
        c->alloc->free(c->alloc->allocator_data, p);
}

static ProtobufCMessage *new_message(ctx *c, const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pb_alloc(c, d->sizeof_message);
    if (m)
        protobuf_c_message_init(d, m);
    return m;
}

/* ---- error reporting ---- */

/*
 * Errors name the field in the JSON the client sent, so the gateway can answer
 * {"field": "bars[3].close", ...}.  Rather than formatting a path string on every descent
 * (the common, successful case), each level pushes a cheap segment (a field descriptor's
 * name, an array index, a map key pointing into jansson's own string) and pops it on the way
 * out; only fail() turns the stack into text.  Segments beyond MAX_SEGS are counted but not
 * stored: such paths would be truncated to fsr_json_error.field's 127 bytes anyway.
 */

/* Length of the valid UTF-8 sequence at |p| (|rem| bytes left), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t rem)
{
    unsigned char c0 = p[0];
    if (c0 < 0x80)
        return 1;
    if (c0 < 0xC2 || c0 > 0xF4)
        return 0;
    size_t n = c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
    if (rem < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    // overlong forms, UTF-16 surrogates and code points above U+10FFFF
    if ((c0 == 0xE0 && p[1] < 0xA0) || (c0 == 0xED && p[1] >= 0xA0) ||
        (c0 == 0xF0 && p[1] < 0x90) || (c0 == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* Client text ends up in error strings: replace invalid (or truncated) UTF-8 with '?'. */
static void sanitize_utf8(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (l == 0) {
            s[i++] = '?';
        } else {
            i += l;
        }
    }
}

static void path_put(char *dst, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        dst[(*o)++] = s[i];
}

/* Writes the lowerCamelCase form of the proto name |name| (protoc's ToJsonName). */
static void path_put_camel(char *dst, size_t cap, size_t *o, const char *name)
{
    int up = 0;
    for (; *name && *o + 1 < cap; name++) {
        char ch = *name;
        if (ch == '_') {
            up = 1;
            continue;
        }
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        up = 0;
        dst[(*o)++] = ch;
    }
}

static void render_path(const ctx *c, char *dst, size_t cap)
{
    size_t o = 0, n = c->nseg < MAX_SEGS ? c->nseg : MAX_SEGS;
    char num[32];
    for (size_t i = 0; i < n; i++) {
        const seg *s = &c->segs[i];
        switch (s->kind) {
        case SEG_FIELD:
            if (o)
                path_put(dst, cap, &o, ".", 1);
            path_put_camel(dst, cap, &o, s->s);
            break;
        case SEG_NAME:
            if (o)
                path_put(dst, cap, &o, ".", 1);
            path_put(dst, cap, &o, s->s, s->n);
            break;
        case SEG_INDEX:
            path_put(dst, cap, &o, num, (size_t)snprintf(num, sizeof(num), "[%zu]", s->n));
            break;
        case SEG_KEY:
            path_put(dst, cap, &o, "[\"", 2);
            path_put(dst, cap, &o, s->s, s->n);
            path_put(dst, cap, &o, "\"]", 2);
            break;
        }
    }
    dst[o] = '\0';
}

/*
 * Records the first error (message and current path) and returns |rv|.  Only the first
 * failure is kept: callers unwind by returning the code, and nothing on the way out may
 * overwrite the precise message from the point of failure.
 */
__attribute__((format(printf, 3, 4))) static int fail(ctx *c, int rv, const char *fmt, ...)
{
    if (c->err && !c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
        va_end(ap);
        render_path(c, c->err->field, sizeof(c->err->field));
        sanitize_utf8(c->err->message);
        sanitize_utf8(c->err->field);
    }
    c->failed = 1;
    return rv;
}

static int fail_nomem(ctx *c)
{
    return fail(c, -ENOMEM, "out of memory");
}

static void push(ctx *c, int kind, const char *s, size_t n)
{
    if (c->nseg < MAX_SEGS)
        c->segs[c->nseg] = (seg){ kind, s, n };
    c->nseg++;
}

static void pop(ctx *c)
{
    c->nseg--;
}

static const char *jkind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static const char *type_name(ProtobufCType t)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "message",
    };
    return (unsigned)t < FSR_ARRAY_SIZE(names) && names[t] ? names[t] : "?";
}

/* ---- descriptor helpers ---- */

static size_t elt_size(ProtobufCType t)
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
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    }
    return 0;
}

/*
 * Classifies |d| by name.  Only the package comparison runs for ordinary messages, and it
 * usually stops at the first character.
 */
static enum wkt wkt_of(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum wkt kind;
    } table[] = {
        { "Timestamp", WKT_TIMESTAMP }, { "Duration", WKT_DURATION },
        { "DoubleValue", WKT_WRAPPER }, { "FloatValue", WKT_WRAPPER },
        { "Int64Value", WKT_WRAPPER },  { "UInt64Value", WKT_WRAPPER },
        { "Int32Value", WKT_WRAPPER },  { "UInt32Value", WKT_WRAPPER },
        { "BoolValue", WKT_WRAPPER },   { "StringValue", WKT_WRAPPER },
        { "BytesValue", WKT_WRAPPER },  { "Struct", WKT_STRUCT },
        { "Value", WKT_VALUE },         { "ListValue", WKT_LIST },
        { "FieldMask", WKT_FIELDMASK }, { "Any", WKT_ANY },
    };
    const char *pkg = d->package_name;
    if (!pkg || pkg[0] != 'g' || strcmp(pkg, "google.protobuf") != 0)
        return WKT_NONE;
    for (size_t i = 0; i < FSR_ARRAY_SIZE(table); i++)
        if (strcmp(d->short_name, table[i].name) == 0)
            return table[i].kind;
    return WKT_NONE;
}

static int is_null_enum(const ProtobufCFieldDescriptor *fd)
{
    if (fd->type != PROTOBUF_C_TYPE_ENUM)
        return 0;
    const ProtobufCEnumDescriptor *ed = fd->descriptor;
    return strcmp(ed->name, "google.protobuf.NullValue") == 0;
}

/* True for the fields whose JSON null is a value rather than "unset". */
static int null_is_value(const ProtobufCFieldDescriptor *fd)
{
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return wkt_of(fd->descriptor) == WKT_VALUE;
    return is_null_enum(fd);
}

/*
 * protoc turns `map<K, V> foo_bar = n;` into `repeated FooBarEntry foo_bar = n;` with a
 * nested FooBarEntry { K key = 1; V value = 2; } (MapEntryName: upper-case the first letter
 * and each letter after '_', drop the '_', append "Entry").  protobuf-c does not keep the
 * map_entry option, so recognise that shape.
 */
static int is_map(const ProtobufCFieldDescriptor *fd)
{
    if (!IS_REPEATED(fd) || fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *e = fd->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0)
        return 0;
    const char *s = e->short_name;
    int up = 1;
    for (const char *p = fd->name; *p; p++) {
        char ch = *p;
        if (ch == '_') {
            up = 1;
            continue;
        }
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        up = 0;
        if (*s++ != ch)
            return 0;
    }
    return strcmp(s, "Entry") == 0;
}

/* Does |key| (|klen| bytes) name the field |name|, as its proto name or its JSON name? */
static int name_matches(const char *name, const char *key, size_t klen)
{
    size_t i = 0;
    const char *p = name;
    while (*p && i < klen && *p == key[i]) {
        p++;
        i++;
    }
    if (*p == '\0' && i == klen)
        return 1;
    int up = 0;
    i = 0;
    for (p = name; *p; p++) {
        char ch = *p;
        if (ch == '_') {
            up = 1;
            continue;
        }
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        up = 0;
        if (i == klen || key[i] != ch)
            return 0;
        i++;
    }
    return i == klen;
}

/* A linear scan: messages are small, and this allocates nothing. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key, size_t klen)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (name_matches(d->fields[i].name, key, klen))
            return &d->fields[i];
    return NULL;
}

static void mark_present(const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m)
{
    if (IS_ONEOF(fd)) {
        *(uint32_t *)MEMBER(m, fd->quantifier_offset) = fd->id;
    } else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
               fd->type != PROTOBUF_C_TYPE_MESSAGE) {
        *(protobuf_c_boolean *)MEMBER(m, fd->quantifier_offset) = 1;
    }
}

/* Frees the current string/bytes value of singular |fd| before it is overwritten. */
static void release_singular(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m)
{
    if (IS_ONEOF(fd) && CASE_OF(m, fd) != fd->id)
        return; // the slot holds another member's value, or nothing
    void *slot = MEMBER(m, fd->offset);
    if (fd->type == PROTOBUF_C_TYPE_STRING) {
        char *old = *(char **)slot;
        if (old && (const void *)old != fd->default_value && old != protobuf_c_empty_string)
            pb_free(c, old);
    } else if (fd->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *def = fd->default_value;
        void *old = ((ProtobufCBinaryData *)slot)->data;
        if (old && (!def || def->data != old))
            pb_free(c, old);
    }
}

/* Setting a member of a oneof while another member is set is an error. */
static int check_oneof(ctx *c, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m)
{
    if (!IS_ONEOF(fd))
        return 0;
    uint32_t cur = CASE_OF(m, fd);
    if (cur == 0 || cur == fd->id)
        return 0;
    const ProtobufCFieldDescriptor *other =
        protobuf_c_message_descriptor_get_field(m->descriptor, cur);
    char name[64];
    size_t o = 0;
    path_put_camel(name, sizeof(name), &o, other ? other->name : "?");
    name[o] = '\0';
    return fail(c, FSR_E_PROTOCOL,
                "only one field of a oneof may be set, and \"%s\" is already set", name);
}

static void commit_singular(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                            const sval *v)
{
    release_singular(c, fd, m);
    memcpy(MEMBER(m, fd->offset), v, elt_size(fd->type));
    mark_present(fd, m);
}

/* The sub-message of singular message field |fd|, created (and linked) if unset. */
static int get_submessage(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                          ProtobufCMessage **out)
{
    int rv = check_oneof(c, fd, m);
    if (rv != 0)
        return rv;
    ProtobufCMessage **pp = MEMBER(m, fd->offset);
    if (IS_ONEOF(fd) && CASE_OF(m, fd) != fd->id)
        *pp = NULL; // the union may hold nothing useful yet
    if (!*pp) {
        ProtobufCMessage *sub = new_message(c, fd->descriptor);
        if (!sub)
            return fail_nomem(c);
        *pp = sub;
        mark_present(fd, m);
    }
    *out = *pp;
    return 0;
}

/*
 * Grows repeated field |fd| of |m| by |k| elements: a new array with the old elements moved
 * over is published with the old count, so the caller fills slots n0.. and bumps the count
 * as each one becomes valid.  Returns the array and the old count in *|n0|.
 */
static int grow_repeated(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m, size_t k,
                         char **arr, size_t *n0)
{
    size_t *np = MEMBER(m, fd->quantifier_offset);
    void **ap = MEMBER(m, fd->offset);
    size_t es = elt_size(fd->type);
    if (k > (SIZE_MAX / es) - *np)
        return fail_nomem(c);
    char *a = pb_alloc(c, (*np + k) * es);
    if (!a)
        return fail_nomem(c);
    if (*np)
        memcpy(a, *ap, *np * es);
    void *old = *ap;
    *ap = a;
    pb_free(c, old);
    *arr = a;
    *n0 = *np;
    return 0;
}

/* ---- text forms of scalars ---- */

/*
 * Numbers are parsed by hand rather than with strtoll/strtoull: those skip leading
 * whitespace, accept '+' and (strtoull) silently negate "-1" to UINT64_MAX, and all three
 * need a NUL-terminated string.  The accepted syntax is exactly '-'? digit+, with overflow
 * detected digit by digit, so no value is ever rounded or wrapped.
 */

/* Decimal integer: '-'? digit+.  Returns 0, -1 on bad syntax, -2 out of int64 range. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == n)
        return -1;
    uint64_t acc = 0;
    int over = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (acc > (UINT64_MAX - d) / 10)
            over = 1;
        else
            acc = acc * 10 + d;
    }
    if (over || acc > (uint64_t)INT64_MAX + neg)
        return -2;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0)
        return -1;
    uint64_t acc = 0;
    int over = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (acc > (UINT64_MAX - d) / 10)
            over = 1;
        else
            acc = acc * 10 + d;
    }
    if (over)
        return -2;
    *out = acc;
    return 0;
}

/* JSON number syntax, leading zeros tolerated: -?d+(.d+)?([eE][+-]?d+)? */
static int is_number_text(const char *s, size_t n)
{
    size_t i = 0, d;
    if (i < n && s[i] == '-')
        i++;
    for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        ;
    if (i == d)
        return 0;
    if (i < n && s[i] == '.') {
        for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* |s| must be NUL-terminated at |n| (jansson strings and our decoded text are). */
static int parse_double_text(ctx *c, const ProtobufCFieldDescriptor *fd, const char *s, size_t n,
                             double *out)
{
    if (n == 3 && memcmp(s, "NaN", 3) == 0) {
        *out = NAN;
    } else if (n == 8 && memcmp(s, "Infinity", 8) == 0) {
        *out = INFINITY;
    } else if (n == 9 && memcmp(s, "-Infinity", 9) == 0) {
        *out = -INFINITY;
    } else if (is_number_text(s, n)) {
        double d = strtod(s, NULL);
        if (isinf(d))
            return fail(c, FSR_E_PROTOCOL, "value out of range for %s", type_name(fd->type));
        *out = d;
    } else {
        return fail(c, FSR_E_PROTOCOL, "invalid value for %s: \"%.40s\"", type_name(fd->type), s);
    }
    return 0;
}

static int range_i64(ctx *c, const ProtobufCFieldDescriptor *fd, int64_t x, int64_t lo, int64_t hi)
{
    if (x < lo || x > hi)
        return fail(c, FSR_E_PROTOCOL, "value %lld out of range for %s", (long long)x,
                    type_name(fd->type));
    return 0;
}

static int text_to_i64(ctx *c, const ProtobufCFieldDescriptor *fd, const char *s, size_t n,
                       int64_t lo, int64_t hi, int64_t *out)
{
    int rv = parse_i64(s, n, out);
    if (rv == -1)
        return fail(c, FSR_E_PROTOCOL, "invalid value for %s: \"%.40s\"", type_name(fd->type), s);
    if (rv == -2)
        return fail(c, FSR_E_PROTOCOL, "value out of range for %s", type_name(fd->type));
    return range_i64(c, fd, *out, lo, hi);
}

static int text_to_u64(ctx *c, const ProtobufCFieldDescriptor *fd, const char *s, size_t n,
                       uint64_t hi, uint64_t *out)
{
    int rv = parse_u64(s, n, out);
    if (rv == -1 && n > 0 && s[0] == '-' && parse_u64(s + 1, n - 1, out) != -1)
        rv = -2; // a well-formed negative number: a range error, not a syntax error
    if (rv == -1)
        return fail(c, FSR_E_PROTOCOL, "invalid value for %s: \"%.40s\"", type_name(fd->type), s);
    if (rv == -2 || *out > hi)
        return fail(c, FSR_E_PROTOCOL, "value out of range for %s", type_name(fd->type));
    return 0;
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard or URL-safe alphabet, padding optional.  Returns the decoded length or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    size_t bits = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+' || ch == '-')
            v = 62;
        else if (ch == '/' || ch == '_')
            v = 63;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static int copy_string(ctx *c, const char *s, size_t n, char **out)
{
    char *p = pb_alloc(c, n + 1);
    if (!p)
        return fail_nomem(c);
    memcpy(p, s, n);
    p[n] = '\0';
    *out = p;
    return 0;
}

/*
 * Parses a scalar of |fd|'s type from text |s| (|n| bytes, NUL-terminated at |n|): a JSON
 * string value, a map key or a query parameter, per |mode|.  Strings and bytes are
 * allocated; on failure nothing is.
 */
static int text_to_scalar(ctx *c, const ProtobufCFieldDescriptor *fd, const char *s, size_t n,
                          enum text_mode mode, sval *v)
{
    int64_t i;
    uint64_t u;
    double d;
    int rv;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rv = text_to_i64(c, fd, s, n, INT32_MIN, INT32_MAX, &i)) != 0)
            return rv;
        v->i32 = (int32_t)i;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return text_to_i64(c, fd, s, n, INT64_MIN, INT64_MAX, &v->i64);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rv = text_to_u64(c, fd, s, n, UINT32_MAX, &u)) != 0)
            return rv;
        v->u32 = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return text_to_u64(c, fd, s, n, UINT64_MAX, &v->u64);
    case PROTOBUF_C_TYPE_FLOAT:
        if ((rv = parse_double_text(c, fd, s, n, &d)) != 0)
            return rv;
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return fail(c, FSR_E_PROTOCOL, "value out of range for float");
        v->f = (float)d;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return parse_double_text(c, fd, s, n, &v->d);
    case PROTOBUF_C_TYPE_BOOL:
        if (mode == TEXT_JSON)
            return fail(c, FSR_E_PROTOCOL, "expected a boolean, got a string");
        if ((n == 4 && memcmp(s, "true", 4) == 0) || (mode == TEXT_QUERY && n == 1 && s[0] == '1'))
            v->b = 1;
        else if ((n == 5 && memcmp(s, "false", 5) == 0) ||
                 (mode == TEXT_QUERY && n == 1 && s[0] == '0'))
            v->b = 0;
        else
            return fail(c, FSR_E_PROTOCOL, "invalid value for bool: \"%.40s\"", s);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = fd->descriptor;
        const ProtobufCEnumValue *ev = NULL;
        if (strlen(s) == n)
            ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (!ev && mode == TEXT_QUERY && parse_i64(s, n, &i) == 0 && i >= INT32_MIN &&
            i <= INT32_MAX)
            ev = protobuf_c_enum_descriptor_get_value(ed, (int)i);
        if (!ev)
            return fail(c, FSR_E_PROTOCOL, "unknown value \"%.60s\" for enum %s", s, ed->name);
        v->e = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
        // jansson has already validated JSON strings; query text comes straight off the wire
        if (mode == TEXT_QUERY) {
            for (size_t k = 0; k < n;) {
                size_t l = utf8_len((const unsigned char *)s + k, n - k);
                if (l == 0 || s[k] == '\0')
                    return fail(c, FSR_E_PROTOCOL, "string is not valid UTF-8");
                k += l;
            }
        }
        return copy_string(c, s, n, &v->s);
    case PROTOBUF_C_TYPE_BYTES: {
        v->bd.len = 0;
        v->bd.data = NULL;
        size_t cap = n / 4 * 3 + 3;
        if (n == 0)
            return 0;
        unsigned char *p = pb_alloc(c, cap);
        if (!p)
            return fail_nomem(c);
        long got = b64_decode(s, n, p);
        if (got < 0) {
            pb_free(c, p);
            return fail(c, FSR_E_PROTOCOL, "invalid base64 in bytes field");
        }
        if (got == 0) {
            pb_free(c, p);
            p = NULL;
        }
        v->bd.len = (size_t)got;
        v->bd.data = p;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return fail(c, FSR_E_PROTOCOL, "field cannot be set from text");
}

/* ---- JSON values to scalars ---- */

/*
 * The proto3 mapping lets every numeric type arrive as a JSON number or as a string (64-bit
 * integers must leave as strings because JavaScript numbers are doubles), so a JSON string
 * for a numeric field goes through the same text parsers as query parameters.  Bools are the
 * exception: only true/false, never "true".
 */

/*
 * An integer from a JSON number or string.  jansson keeps integer literals exactly as long
 * long (and refuses literals beyond that range).  Reals are accepted only when integral and
 * no larger than 2^53, where a double still counts exactly.
 */
static int jv_to_i64(ctx *c, const ProtobufCFieldDescriptor *fd, const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != trunc(d))
            return fail(c, FSR_E_PROTOCOL, "expected an integer for %s, got %.17g",
                        type_name(fd->type), d);
        if (fabs(d) > 9007199254740992.0)
            return fail(c, FSR_E_PROTOCOL,
                        "%s value too large for an exact JSON number; send it as a string",
                        type_name(fd->type));
        *out = (int64_t)d;
        return 0;
    }
    if (json_is_string(v))
        return text_to_i64(c, fd, json_string_value(v), json_string_length(v), INT64_MIN, INT64_MAX,
                           out);
    return fail(c, FSR_E_PROTOCOL, "expected %s (a number or a string), got %s",
                type_name(fd->type), jkind(v));
}

static int jv_to_scalar(ctx *c, const ProtobufCFieldDescriptor *fd, const json_t *v, sval *out)
{
    int64_t i;
    int rv;
    if (json_is_string(v) && fd->type != PROTOBUF_C_TYPE_BOOL)
        return text_to_scalar(c, fd, json_string_value(v), json_string_length(v), TEXT_JSON, out);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rv = jv_to_i64(c, fd, v, &i)) != 0 ||
            (rv = range_i64(c, fd, i, INT32_MIN, INT32_MAX)) != 0)
            return rv;
        out->i32 = (int32_t)i;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return jv_to_i64(c, fd, v, &out->i64);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rv = jv_to_i64(c, fd, v, &i)) != 0 || (rv = range_i64(c, fd, i, 0, UINT32_MAX)) != 0)
            return rv;
        out->u32 = (uint32_t)i;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        // JSON numbers reach only 2^63-1 through jansson; larger values come as strings
        if ((rv = jv_to_i64(c, fd, v, &i)) != 0 || (rv = range_i64(c, fd, i, 0, INT64_MAX)) != 0)
            return rv;
        out->u64 = (uint64_t)i;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double d;
        if (json_is_integer(v))
            d = (double)json_integer_value(v);
        else if (json_is_real(v))
            d = json_real_value(v);
        else
            return fail(c, FSR_E_PROTOCOL, "expected a number, got %s", jkind(v));
        if (fd->type == PROTOBUF_C_TYPE_DOUBLE) {
            out->d = d;
        } else {
            if (fabs(d) > FLT_MAX)
                return fail(c, FSR_E_PROTOCOL, "value out of range for float");
            out->f = (float)d;
        }
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(c, FSR_E_PROTOCOL, "expected a boolean, got %s", jkind(v));
        out->b = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = fd->descriptor;
        if (json_is_null(v)) { // only NullValue fields get here
            out->e = 0;
            return 0;
        }
        if (!json_is_number(v))
            return fail(c, FSR_E_PROTOCOL, "expected an enum name or number, got %s", jkind(v));
        if ((rv = jv_to_i64(c, fd, v, &i)) != 0)
            return rv;
        if (i < INT32_MIN || i > INT32_MAX || !protobuf_c_enum_descriptor_get_value(ed, (int)i))
            return fail(c, FSR_E_PROTOCOL, "unknown value %lld for enum %s", (long long)i,
                        ed->name);
        out->e = (int)i;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        return fail(c, FSR_E_PROTOCOL, "expected a string, got %s", jkind(v));
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return fail(c, FSR_E_PROTOCOL, "unsupported field type");
}

/* ---- Timestamp, Duration, FieldMask text ---- */

#define TS_MIN      (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TS_MAX      253402300799LL   /* 9999-12-31T23:59:59Z */
#define DUR_MAX_SEC 315576000000LL   /* 10000 years, the Duration limit */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Reads exactly |w| digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, int w, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < w; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* Up to 9 fraction digits after a '.', scaled to nanoseconds. */
static int fraction(const char *s, size_t n, size_t *i, int32_t *nanos)
{
    int k = 0;
    int32_t v = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        if (++k > 9)
            return -1;
        v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    if (k == 0)
        return -1;
    for (; k < 9; k++)
        v *= 10;
    *nanos = v;
    return 0;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM). */
static int parse_timestamp(const char *s, size_t n, int64_t *secs, int32_t *nanos)
{
    static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    unsigned y, mo, d, h, mi, se;
    size_t i = 0;
    *nanos = 0;
    if (digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || digits(s, n, &i, 2, &mo) || i >= n ||
        s[i++] != '-' || digits(s, n, &i, 2, &d) || i >= n || (s[i] != 'T' && s[i] != 't') ||
        (i++, digits(s, n, &i, 2, &h)) || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi) ||
        i >= n || s[i++] != ':' || digits(s, n, &i, 2, &se))
        return -1;
    if (i < n && s[i] == '.' && (i++, fraction(s, n, &i, nanos)))
        return -1;
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        unsigned oh, om;
        if (digits(s, n, &i, 2, &oh) || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
        off = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (i != n || y < 1 || mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59)
        return -1;
    unsigned dim = mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
    if (d < 1 || d > dim)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (t < TS_MIN || t > TS_MAX)
        return -2;
    *secs = t;
    return 0;
}

/* [-]S[.f{1,9}]s */
static int parse_duration(const char *s, size_t n, int64_t *secs, int32_t *nanos)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    size_t start = i;
    int64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i++] - '0');
        if (v > DUR_MAX_SEC)
            return -2;
    }
    if (i == start)
        return -1;
    *nanos = 0;
    if (i < n && s[i] == '.' && (i++, fraction(s, n, &i, nanos)))
        return -1;
    if (i + 1 != n || s[i] != 's')
        return -1;
    *secs = neg ? -v : v;
    if (neg)
        *nanos = -*nanos;
    return 0;
}

static int set_i64_field(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, unsigned id,
                         int64_t v)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, id);
    if (!fd)
        return -1;
    if (fd->type == PROTOBUF_C_TYPE_INT64)
        *(int64_t *)MEMBER(m, fd->offset) = v;
    else
        *(int32_t *)MEMBER(m, fd->offset) = (int32_t)v;
    return 0;
}

/*
 * A FieldMask's JSON is "a.fooBar,b": paths joined by ',' with each name lowerCamelCase.
 * Each upper-case letter becomes '_' plus its lower case.
 */
static int parse_fieldmask(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                           const char *s, size_t n)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, 1);
    if (n == 0)
        return 0;
    size_t k = 1;
    for (size_t i = 0; i < n; i++)
        k += s[i] == ',';
    char *arr;
    size_t n0;
    int rv = grow_repeated(c, fd, m, k, &arr, &n0);
    if (rv != 0)
        return rv;
    size_t *np = MEMBER(m, fd->quantifier_offset);
    const char *p = s, *end = s + n;
    for (size_t e = 0; e < k; e++) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q)
            q = end;
        size_t ups = 0;
        for (const char *t = p; t < q; t++) {
            if (*t == '_' || (unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f)
                return fail(c, FSR_E_PROTOCOL, "invalid FieldMask path");
            ups += *t >= 'A' && *t <= 'Z';
        }
        char *out = pb_alloc(c, (size_t)(q - p) + ups + 1);
        if (!out)
            return fail_nomem(c);
        size_t o = 0;
        for (const char *t = p; t < q; t++) {
            if (*t >= 'A' && *t <= 'Z') {
                out[o++] = '_';
                out[o++] = (char)(*t - 'A' + 'a');
            } else {
                out[o++] = *t;
            }
        }
        out[o] = '\0';
        ((char **)arr)[n0 + e] = out;
        (*np)++;
        p = q + 1;
    }
    return 0;
}

/*
 * Sets a message of a well-known type whose JSON form is a string (Timestamp, Duration,
 * FieldMask) or a wrapper (whose form is its value's) from text |s|.
 */
static int message_from_text(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                             const char *s, size_t n, enum text_mode mode)
{
    int64_t secs;
    int32_t nanos;
    int rv;
    switch (wkt_of(d)) {
    case WKT_TIMESTAMP:
        rv = parse_timestamp(s, n, &secs, &nanos);
        if (rv == -2)
            return fail(c, FSR_E_PROTOCOL, "timestamp out of range (0001-01-01 to 9999-12-31)");
        if (rv != 0)
            return fail(c, FSR_E_PROTOCOL, "invalid RFC 3339 timestamp: \"%.40s\"", s);
        set_i64_field(d, m, 1, secs);
        set_i64_field(d, m, 2, nanos);
        return 0;
    case WKT_DURATION:
        rv = parse_duration(s, n, &secs, &nanos);
        if (rv == -2)
            return fail(c, FSR_E_PROTOCOL, "duration out of range");
        if (rv != 0)
            return fail(c, FSR_E_PROTOCOL, "invalid duration: \"%.40s\" (expected e.g. \"1.5s\")",
                        s);
        set_i64_field(d, m, 1, secs);
        set_i64_field(d, m, 2, nanos);
        return 0;
    case WKT_FIELDMASK:
        return parse_fieldmask(c, d, m, s, n);
    case WKT_WRAPPER: {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, 1);
        sval v;
        if ((rv = text_to_scalar(c, fd, s, n, mode, &v)) != 0)
            return rv;
        commit_singular(c, fd, m, &v);
        return 0;
    }
    default:
        return fail(c, FSR_E_PROTOCOL, "%s", "a message field cannot be set from a string");
    }
}

/* ---- JSON to message ---- */

/*
 * The recursion follows the JSON, not the descriptor: parse_fields() walks an object's keys
 * in document order and looks each up in the descriptor, so cost is linear in the input and
 * absent fields cost nothing.  Every object or array entered counts towards
 * FSR_JSON_MAX_DEPTH (enter()); jansson's parser already stops at 2048 levels, so by the
 * time we recurse the input is known to fit the stack, and 64 is the API's own limit.
 */

static int parse_message(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                         json_t *v);

static int enter(ctx *c)
{
    if (++c->depth > FSR_JSON_MAX_DEPTH)
        return fail(c, FSR_E_PROTOCOL, "JSON nested deeper than %d levels", FSR_JSON_MAX_DEPTH);
    return 0;
}

/* A singular field (including a oneof member or a map entry's value) from JSON |v|. */
static int parse_singular(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                          json_t *v)
{
    int rv;
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *sub;
        if ((rv = get_submessage(c, fd, m, &sub)) != 0)
            return rv;
        return parse_message(c, fd->descriptor, sub, v);
    }
    if ((rv = check_oneof(c, fd, m)) != 0)
        return rv;
    sval sv;
    if ((rv = jv_to_scalar(c, fd, v, &sv)) != 0)
        return rv;
    commit_singular(c, fd, m, &sv);
    return 0;
}

/*
 * A map field: a JSON object whose keys are the text form of the key type (the proto3
 * mapping quotes even integer and bool keys).  Each entry is linked into the array before
 * its key and value are parsed, so a failure part-way leaves a message free_unpacked() can
 * release.
 */
static int parse_map(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m, json_t *v)
{
    if (!json_is_object(v))
        return fail(c, FSR_E_PROTOCOL, "expected an object, got %s", jkind(v));
    int rv = enter(c);
    if (rv != 0)
        return rv;
    size_t k = json_object_size(v);
    if (k == 0)
        goto done;
    char *arr;
    size_t n0;
    if ((rv = grow_repeated(c, fd, m, k, &arr, &n0)) != 0)
        return rv;
    size_t *np = MEMBER(m, fd->quantifier_offset);
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd = &ed->fields[0], *vfd = &ed->fields[1];
    for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *val = json_object_iter_value(it);
        push(c, SEG_KEY, key, klen);
        ProtobufCMessage *e = new_message(c, ed);
        if (!e)
            return fail_nomem(c);
        ((ProtobufCMessage **)arr)[(*np)++] = e;
        sval kv;
        if ((rv = text_to_scalar(c, kfd, key, klen, TEXT_KEY, &kv)) != 0)
            return rv;
        commit_singular(c, kfd, e, &kv);
        if (json_is_null(val) && !null_is_value(vfd))
            return fail(c, FSR_E_PROTOCOL, "map values cannot be null");
        if ((rv = parse_singular(c, vfd, e, val)) != 0)
            return rv;
        pop(c);
    }
    (void)n0;
done:
    c->depth--;
    return 0;
}

static int parse_repeated(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                          json_t *v)
{
    if (is_map(fd))
        return parse_map(c, fd, m, v);
    if (!json_is_array(v))
        return fail(c, FSR_E_PROTOCOL, "expected an array, got %s", jkind(v));
    int rv = enter(c);
    if (rv != 0)
        return rv;
    size_t k = json_array_size(v);
    if (k == 0)
        goto done;
    char *arr;
    size_t n0;
    if ((rv = grow_repeated(c, fd, m, k, &arr, &n0)) != 0)
        return rv;
    size_t *np = MEMBER(m, fd->quantifier_offset);
    size_t es = elt_size(fd->type);
    int null_ok = null_is_value(fd);
    for (size_t i = 0; i < k; i++) {
        json_t *el = json_array_get(v, i);
        push(c, SEG_INDEX, NULL, i);
        if (json_is_null(el) && !null_ok)
            return fail(c, FSR_E_PROTOCOL, "null is not allowed in a repeated field");
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage *sub = new_message(c, fd->descriptor);
            if (!sub)
                return fail_nomem(c);
            ((ProtobufCMessage **)arr)[(*np)++] = sub;
            if ((rv = parse_message(c, fd->descriptor, sub, el)) != 0)
                return rv;
        } else {
            sval sv;
            if ((rv = jv_to_scalar(c, fd, el, &sv)) != 0)
                return rv;
            memcpy(arr + (n0 + i) * es, &sv, es);
            (*np)++;
        }
        pop(c);
    }
done:
    c->depth--;
    return 0;
}

/* google.protobuf.Value: the JSON type picks the member of its `kind` oneof. */
static int parse_value(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, json_t *v)
{
    unsigned id;
    switch (json_typeof(v)) {
    case JSON_NULL:
        id = 1;
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        id = 2;
        break;
    case JSON_STRING:
        id = 3;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        id = 4;
        break;
    case JSON_OBJECT:
        id = 5;
        break;
    default:
        id = 6;
        break;
    }
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, id);
    if (!fd)
        return fail(c, FSR_E_PROTOCOL, "malformed google.protobuf.Value descriptor");
    return parse_singular(c, fd, m, v);
}

/*
 * An ordinary message: a JSON object of fields.  Unknown keys are errors (the REST contract
 * rejects them so that a misspelt optional field is not silently ignored), and so is a field
 * named twice, once by each of its names: jansson's duplicate check cannot see that.
 */
static int parse_fields(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, json_t *v)
{
    if (!json_is_object(v))
        return fail(c, FSR_E_PROTOCOL, "expected an object, got %s", jkind(v));
    int rv = enter(c);
    if (rv != 0)
        return rv;
    // which fields this object set: catches "fooBar" and "foo_bar" in one object
    uint64_t small[4] = { 0 }, *seen = small;
    if (d->n_fields > 256)
        seen = fsr_xcalloc((d->n_fields + 63) / 64, sizeof(uint64_t));
    for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *val = json_object_iter_value(it);
        const ProtobufCFieldDescriptor *fd = find_field(d, key, klen);
        if (!fd) {
            push(c, SEG_NAME, key, klen);
            rv = fail(c, FSR_E_PROTOCOL, "unknown field \"%.100s\"", key);
            goto out;
        }
        size_t idx = (size_t)(fd - d->fields);
        push(c, SEG_FIELD, fd->name, 0);
        if (seen[idx / 64] & (1ull << (idx % 64))) {
            rv = fail(c, FSR_E_PROTOCOL, "field given twice (by its JSON and its proto name)");
            goto out;
        }
        seen[idx / 64] |= 1ull << (idx % 64);
        if (json_is_null(val) && !null_is_value(fd)) {
            pop(c); // null: leave the default
            continue;
        }
        rv = IS_REPEATED(fd) ? parse_repeated(c, fd, m, val) : parse_singular(c, fd, m, val);
        if (rv != 0)
            goto out;
        pop(c);
    }
    c->depth--;
out:
    if (seen != small)
        free(seen);
    return rv;
}

static int parse_message(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                         json_t *v)
{
    switch (wkt_of(d)) {
    case WKT_TIMESTAMP:
    case WKT_DURATION:
    case WKT_FIELDMASK:
        if (!json_is_string(v))
            return fail(c, FSR_E_PROTOCOL, "expected a string for %s, got %s", d->name, jkind(v));
        return message_from_text(c, d, m, json_string_value(v), json_string_length(v), TEXT_JSON);
    case WKT_WRAPPER:
        return parse_singular(c, protobuf_c_message_descriptor_get_field(d, 1), m, v);
    case WKT_STRUCT:
        return parse_map(c, protobuf_c_message_descriptor_get_field(d, 1), m, v);
    case WKT_LIST:
        return parse_repeated(c, protobuf_c_message_descriptor_get_field(d, 1), m, v);
    case WKT_VALUE:
        return parse_value(c, d, m, v);
    case WKT_ANY:
        return fail(c, FSR_E_PROTOCOL, "google.protobuf.Any is not supported");
    case WKT_NONE:
        break;
    }
    return parse_fields(c, d, m, v);
}

static int to_pb(ctx *c, const ProtobufCMessageDescriptor *desc, json_t *v, ProtobufCMessage **out)
{
    ProtobufCMessage *m = new_message(c, desc);
    if (!m)
        return fail_nomem(c);
    int rv = parse_message(c, desc, m, v);
    if (rv != 0) {
        protobuf_c_message_free_unpacked(m, c->alloc);
        return rv;
    }
    *out = m;
    return 0;
}

static json_t *load(ctx *c, const char *json, size_t len, size_t flags)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | flags, &je);
    if (!root)
        fail(c, FSR_E_PROTOCOL, "invalid JSON: %s (line %d, column %d)", je.text, je.line,
             je.column);
    return root;
}

int fsr_json_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                   ProtobufCAllocator *alloc, ProtobufCMessage **out, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, alloc, err);
    json_t *root = load(&c, json, len, 0);
    if (!root)
        return FSR_E_PROTOCOL;
    int rv;
    if (!json_is_object(root))
        rv = fail(&c, FSR_E_PROTOCOL, "the request body must be a JSON object");
    else
        rv = to_pb(&c, desc, root, out);
    json_decref(root);
    return rv;
}

int fsr_json_object_to_pb(const ProtobufCMessageDescriptor *desc, json_t *value,
                          ProtobufCAllocator *alloc, ProtobufCMessage **out, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, alloc, err);
    return to_pb(&c, desc, value, out);
}

int fsr_pb_new(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
               ProtobufCMessage **out)
{
    ctx c;
    ctx_init(&c, alloc, NULL);
    ProtobufCMessage *m = new_message(&c, desc);
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
}

/*
 * Walks dotted |path| (|plen| bytes) from |m| (of type |d|), pushing each segment; all but
 * the last must be singular message fields.  With |create|, unset intermediate messages are
 * created; without, *|parent| is NULL once one is unset (and |m| may be NULL).  Returns the
 * last field in *|fdp| and the message type that owns it in *|pdp|.
 */
static int resolve_path(ctx *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                        const char *path, size_t plen, int create, ProtobufCMessage **parent,
                        const ProtobufCMessageDescriptor **pdp,
                        const ProtobufCFieldDescriptor **fdp)
{
    const char *p = path, *end = path + plen;
    for (;;) {
        const char *q = memchr(p, '.', (size_t)(end - p));
        if (!q)
            q = end;
        const ProtobufCFieldDescriptor *fd = find_field(d, p, (size_t)(q - p));
        if (!fd) {
            push(c, SEG_NAME, p, (size_t)(q - p));
            return fail(c, FSR_E_PROTOCOL, "unknown field \"%.*s\"", (int)(q - p), p);
        }
        push(c, SEG_FIELD, fd->name, 0);
        if (q == end) {
            *parent = m;
            *pdp = d;
            *fdp = fd;
            return 0;
        }
        if (IS_REPEATED(fd) || fd->type != PROTOBUF_C_TYPE_MESSAGE)
            return fail(c, FSR_E_PROTOCOL, "not a singular message field, so it has no subfields");
        d = fd->descriptor;
        if (create) {
            int rv = get_submessage(c, fd, m, &m);
            if (rv != 0)
                return rv;
        } else if (m) {
            if (IS_ONEOF(fd) && CASE_OF(m, fd) != fd->id)
                m = NULL;
            else
                m = *(ProtobufCMessage **)MEMBER(m, fd->offset);
        }
        p = q + 1;
    }
}

int fsr_json_merge_pb(ProtobufCMessage *msg, const char *field_path, const char *json, size_t len,
                      ProtobufCAllocator *alloc, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, alloc, err);
    int whole = !field_path || !*field_path;
    json_t *root = load(&c, json, len, whole ? 0 : JSON_DECODE_ANY);
    if (!root)
        return FSR_E_PROTOCOL;
    int rv;
    if (whole) {
        if (!json_is_object(root))
            rv = fail(&c, FSR_E_PROTOCOL, "the request body must be a JSON object");
        else
            rv = parse_message(&c, msg->descriptor, msg, root);
    } else {
        ProtobufCMessage *parent;
        const ProtobufCMessageDescriptor *pd;
        const ProtobufCFieldDescriptor *fd;
        rv = resolve_path(&c, msg->descriptor, msg, field_path, strlen(field_path), 1, &parent, &pd,
                          &fd);
        if (rv == 0 && !json_is_null(root))
            rv = IS_REPEATED(fd) ? parse_repeated(&c, fd, parent, root)
                                 : parse_singular(&c, fd, parent, root);
        else if (rv == 0 && null_is_value(fd))
            rv = parse_singular(&c, fd, parent, root);
    }
    json_decref(root);
    return rv;
}

/* ---- path variables and query parameters ---- */

/*
 * Path variables and query parameters are text, not JSON, so they have their own, slightly
 * looser rules (TEXT_QUERY): enums by number as well as by name, bools as 1/0.  A repeated
 * field cannot grow in place (protobuf-c arrays carry no capacity, and arena memory is never
 * freed), so appending one value at a time would copy the array each time: quadratic time and
 * arena growth for "?ids=1&ids=2&...".  fsr_pb_merge_query() therefore groups a query's
 * pairs by key first (a stable sort) and grows each repeated field once.
 */

/* Appends |k| values, given as text, to repeated field |fd| (one array allocation). */
static int append_texts(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                        const char *const *vals, const size_t *lens, size_t k)
{
    if (is_map(fd))
        return fail(c, FSR_E_PROTOCOL, "a map field cannot be set from a query parameter");
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        enum wkt w = wkt_of(fd->descriptor);
        if (w != WKT_TIMESTAMP && w != WKT_DURATION && w != WKT_FIELDMASK && w != WKT_WRAPPER)
            return fail(c, FSR_E_PROTOCOL, "a message field cannot be set from a string");
    }
    char *arr;
    size_t n0;
    int rv = grow_repeated(c, fd, m, k, &arr, &n0);
    if (rv != 0)
        return rv;
    size_t *np = MEMBER(m, fd->quantifier_offset);
    size_t es = elt_size(fd->type);
    for (size_t i = 0; i < k; i++) {
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage *sub = new_message(c, fd->descriptor);
            if (!sub)
                return fail_nomem(c);
            ((ProtobufCMessage **)arr)[(*np)++] = sub;
            rv = message_from_text(c, fd->descriptor, sub, vals[i], lens[i], TEXT_QUERY);
        } else {
            sval sv;
            rv = text_to_scalar(c, fd, vals[i], lens[i], TEXT_QUERY, &sv);
            if (rv == 0) {
                memcpy(arr + (n0 + i) * es, &sv, es);
                (*np)++;
            }
        }
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int set_from_text(ctx *c, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                         const char *s, size_t n)
{
    int rv;
    if (IS_REPEATED(fd))
        return append_texts(c, fd, m, &s, &n, 1);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        enum wkt w = wkt_of(fd->descriptor);
        if (w != WKT_TIMESTAMP && w != WKT_DURATION && w != WKT_FIELDMASK && w != WKT_WRAPPER)
            return fail(c, FSR_E_PROTOCOL, "a message field cannot be set from a string");
        ProtobufCMessage *sub;
        if ((rv = get_submessage(c, fd, m, &sub)) != 0)
            return rv;
        if (w == WKT_FIELDMASK) { // replace, do not append
            const ProtobufCFieldDescriptor *pf =
                protobuf_c_message_descriptor_get_field(fd->descriptor, 1);
            size_t *np = MEMBER(sub, pf->quantifier_offset);
            char ***ap = MEMBER(sub, pf->offset);
            for (size_t i = 0; i < *np; i++)
                pb_free(c, (*ap)[i]);
            pb_free(c, *ap);
            *ap = NULL;
            *np = 0;
        }
        return message_from_text(c, fd->descriptor, sub, s, n, TEXT_QUERY);
    }
    if ((rv = check_oneof(c, fd, m)) != 0)
        return rv;
    sval sv;
    if ((rv = text_to_scalar(c, fd, s, n, TEXT_QUERY, &sv)) != 0)
        return rv;
    commit_singular(c, fd, m, &sv);
    return 0;
}

int fsr_pb_set_field_from_string(ProtobufCMessage *msg, const char *field_path, const char *value,
                                 ProtobufCAllocator *alloc, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, alloc, err);
    ProtobufCMessage *parent;
    const ProtobufCMessageDescriptor *pd;
    const ProtobufCFieldDescriptor *fd;
    int rv = resolve_path(&c, msg->descriptor, msg, field_path, strlen(field_path), 1, &parent, &pd,
                          &fd);
    if (rv != 0)
        return rv;
    return set_from_text(&c, fd, parent, value, strlen(value));
}

typedef struct qpair {
    const char *k, *v;
    size_t kn, vn, idx;
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    size_t n = x->kn < y->kn ? x->kn : y->kn;
    int r = memcmp(x->k, y->k, n);
    if (r != 0)
        return r;
    if (x->kn != y->kn)
        return x->kn < y->kn ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Form-decodes s[0..n) into |out| (NUL-terminated); returns the length or -1. */
static long form_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = n - i >= 3 ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

int fsr_pb_merge_query(ProtobufCMessage *msg, const char *query, size_t len,
                       ProtobufCAllocator *alloc, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, alloc, err);
    if (len == 0)
        return 0;
    size_t np = 1;
    for (size_t i = 0; i < len; i++)
        np += query[i] == '&';
    // decoded text never grows; two NULs per pair
    qpair *pairs = fsr_xmalloc(np * sizeof(*pairs));
    char *text = fsr_xmalloc(len + 2 * np);
    const char **vals = fsr_xmalloc(np * sizeof(*vals));
    size_t *lens = fsr_xmalloc(np * sizeof(*lens));
    size_t n = 0, o = 0;
    int rv = 0;
    for (const char *p = query, *end = query + len; p <= end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        if (amp > p) {
            const char *eq = memchr(p, '=', (size_t)(amp - p));
            const char *kend = eq ? eq : amp;
            qpair *q = &pairs[n];
            long kl = form_decode(p, (size_t)(kend - p), text + o);
            if (kl < 0) {
                push(&c, SEG_NAME, p, (size_t)(kend - p));
                rv = fail(&c, FSR_E_PROTOCOL, "malformed %%-escape in query parameter name");
                goto out;
            }
            q->k = text + o;
            q->kn = (size_t)kl;
            o += (size_t)kl + 1;
            long vl = eq ? form_decode(eq + 1, (size_t)(amp - eq - 1), text + o) : 0;
            if (!eq)
                text[o] = '\0';
            if (vl < 0) {
                push(&c, SEG_NAME, q->k, q->kn);
                rv = fail(&c, FSR_E_PROTOCOL, "malformed %%-escape in query parameter value");
                goto out;
            }
            q->v = text + o;
            q->vn = (size_t)vl;
            o += (size_t)vl + 1;
            q->idx = n++;
        }
        p = amp + 1;
    }
    // group repeated keys so each repeated field is grown once
    qsort(pairs, n, sizeof(*pairs), qpair_cmp);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && pairs[j].kn == pairs[i].kn &&
                        memcmp(pairs[j].k, pairs[i].k, pairs[i].kn) == 0;
             j++)
            ;
        c.nseg = 0;
        ProtobufCMessage *parent;
        const ProtobufCMessageDescriptor *pd;
        const ProtobufCFieldDescriptor *fd;
        if ((rv = resolve_path(&c, msg->descriptor, msg, pairs[i].k, pairs[i].kn, 1, &parent, &pd,
                               &fd)) != 0)
            goto out;
        if (IS_REPEATED(fd)) {
            for (size_t k = i; k < j; k++) {
                vals[k - i] = pairs[k].v;
                lens[k - i] = pairs[k].vn;
            }
            rv = append_texts(&c, fd, parent, vals, lens, j - i);
        } else if (j - i > 1) {
            rv = fail(&c, FSR_E_PROTOCOL, "query parameter given more than once");
        } else {
            rv = set_from_text(&c, fd, parent, pairs[i].v, pairs[i].vn);
        }
        if (rv != 0)
            goto out;
    }
out:
    free(lens);
    free(vals);
    free(text);
    free(pairs);
    return rv;
}

/* ---- message to JSON ---- */

/*
 * Output is written straight into one growing malloc buffer rather than built as a jansson
 * tree and dumped: no per-value allocations, and we control number formatting (jansson
 * prints reals with %.17g, which turns 0.1 into 0.10000000000000001).  Fields come out in
 * field-number order, the order protobuf-c keeps its descriptors in.
 */

static void w_reserve(ctx *c, size_t n)
{
    if (c->cap - c->len >= n)
        return;
    size_t cap = c->cap ? c->cap * 2 : 512;
    while (cap - c->len < n)
        cap *= 2;
    c->buf = fsr_xrealloc(c->buf, cap);
    c->cap = cap;
}

static void w_put(ctx *c, const char *s, size_t n)
{
    w_reserve(c, n);
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static void w_putc(ctx *c, char ch)
{
    w_reserve(c, 1);
    c->buf[c->len++] = ch;
}

static void w_u64(ctx *c, uint64_t v)
{
    char b[24], *p = b + sizeof(b);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    w_put(c, p, (size_t)(b + sizeof(b) - p));
}

static void w_i64(ctx *c, int64_t v)
{
    if (v < 0) {
        w_putc(c, '-');
        w_u64(c, 0 - (uint64_t)v);
    } else {
        w_u64(c, (uint64_t)v);
    }
}

/* Escape class of each byte: 0 copy, 1 needs an escape, 2 starts a multi-byte sequence. */
static const unsigned char esc_class[256] = {
    [0 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x80 ... 0xff] = 2,
};

/* A JSON string; -1 if |s| is not valid UTF-8 (protobuf strings must be). */
static int w_string(ctx *c, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    w_reserve(c, n + 2);
    c->buf[c->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        unsigned char k = esc_class[ch];
        if (k == 0) {
            i++;
            continue;
        }
        if (k == 2) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l == 0)
                return -1;
            i += l;
            continue;
        }
        w_put(c, s + run, i - run);
        char e[6] = { '\\', 0 };
        size_t el = 2;
        switch (ch) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[ch >> 4];
            e[5] = hex[ch & 15];
            el = 6;
        }
        w_put(c, e, el);
        run = ++i;
    }
    w_put(c, s + run, n - run);
    w_putc(c, '"');
    return 0;
}

/*
 * The shortest text that reads back as exactly |d|.  DBL_DIG is 15, so when %.15g round-trips
 * it is also the shortest %g form (shorter decimals survive a 15-digit round trip unchanged);
 * otherwise %.16g, and %.17g always round-trips.  Subnormals are the one case where a shorter
 * form might exist and we print more digits than needed, which is still exact.
 */
static void w_double(ctx *c, double d)
{
    if (isnan(d)) {
        w_put(c, "\"NaN\"", 5);
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            w_put(c, "\"Infinity\"", 10);
        else
            w_put(c, "\"-Infinity\"", 11);
        return;
    }
    if (d == trunc(d) && fabs(d) < 1e15 && !(d == 0 && signbit(d))) {
        w_i64(c, (int64_t)d); // fast path for whole numbers
        return;
    }
    if (d == 0) {
        /*
         * Negative zero: "-0.0", not "-0", which jansson reads back as the integer 0 and so
         * loses the sign (found by test/fuzz/fuzz_json_pb.c: a JSON round trip dropped it).
         */
        w_put(c, "-0.0", 4);
        return;
    }
    /*
     * Fast path for prices and rates: the fewest decimals k <= 9 such that d is the double
     * nearest to N / 10^k.  N and 10^k are exact doubles (N < 2^53), so N / 10^k is the
     * correctly rounded quotient, which is exactly what strtod makes of the decimal text; the
     * equality test therefore proves the round trip.  Trying k upwards gives the shortest.
     */
    static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
    double a = fabs(d);
    if (a < 1e15 && a >= 1e-4) {
        for (int k = 1; k <= 9; k++) {
            double n = nearbyint(a * pow10[k]);
            if (n >= 9007199254740992.0)
                break;
            if (n / pow10[k] != a)
                continue;
            char b[40], *p = b + sizeof(b);
            uint64_t v = (uint64_t)n;
            for (int i = 0; i < k; i++, v /= 10)
                *--p = (char)('0' + v % 10);
            *--p = '.';
            do {
                *--p = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            if (d < 0)
                *--p = '-';
            w_put(c, p, (size_t)(b + sizeof(b) - p));
            return;
        }
    }
    char b[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(b, sizeof(b), "%.*g", prec, d);
        if (prec == 17 || strtod(b, NULL) == d)
            break;
    }
    w_put(c, b, (size_t)n);
}

static void w_float(ctx *c, float f)
{
    if (isnan(f) || isinf(f) || (f == truncf(f) && fabsf(f) < 1e7f)) { // -0 too: "-0.0"
        w_double(c, f);
        return;
    }
    char b[40];
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(b, sizeof(b), "%.*g", prec, (double)f);
        if (prec == 9 || strtof(b, NULL) == f)
            break;
    }
    w_put(c, b, (size_t)n);
}

static void w_b64(ctx *c, const ProtobufCBinaryData *bd)
{
    size_t n = bd->len;
    const unsigned char *p = bd->data;
    w_reserve(c, (n + 2) / 3 * 4 + 2);
    char *o = c->buf + c->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64_std[v >> 18];
        *o++ = b64_std[(v >> 12) & 63];
        *o++ = b64_std[(v >> 6) & 63];
        *o++ = b64_std[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64_std[v >> 18];
        *o++ = b64_std[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_std[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    c->len = (size_t)(o - c->buf);
}

/* Writes |v| as exactly |w| digits at |o|. */
static char *put_digits(char *o, uint64_t v, int w)
{
    for (int i = w - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
    return o + w;
}

/* A fraction of 3, 6 or 9 digits (nothing for 0); |nanos| in [0, 1e9). */
static void w_nanos(ctx *c, int32_t nanos)
{
    if (nanos == 0)
        return;
    char b[12], *o = b;
    *o++ = '.';
    if (nanos % 1000000 == 0)
        o = put_digits(o, (uint64_t)nanos / 1000000, 3);
    else if (nanos % 1000 == 0)
        o = put_digits(o, (uint64_t)nanos / 1000, 6);
    else
        o = put_digits(o, (uint64_t)nanos, 9);
    w_put(c, b, (size_t)(o - b));
}

static int64_t get_int_field(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
                             unsigned id)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, id);
    if (!fd)
        return 0;
    if (fd->type == PROTOBUF_C_TYPE_INT64)
        return *(const int64_t *)CMEMBER(m, fd->offset);
    return *(const int32_t *)CMEMBER(m, fd->offset);
}

static int emit_timestamp(ctx *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m)
{
    int64_t secs = get_int_field(d, m, 1), nanos = get_int_field(d, m, 2);
    if (secs < TS_MIN || secs > TS_MAX || nanos < 0 || nanos > 999999999)
        return fail(c, -EINVAL, "timestamp out of range");
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned mo, d2;
    civil_from_days(days, &y, &mo, &d2);
    char b[24], *o = b;
    *o++ = '"';
    o = put_digits(o, (uint64_t)y, 4);
    *o++ = '-';
    o = put_digits(o, mo, 2);
    *o++ = '-';
    o = put_digits(o, d2, 2);
    *o++ = 'T';
    o = put_digits(o, (uint64_t)(rem / 3600), 2);
    *o++ = ':';
    o = put_digits(o, (uint64_t)(rem / 60 % 60), 2);
    *o++ = ':';
    o = put_digits(o, (uint64_t)(rem % 60), 2);
    w_put(c, b, (size_t)(o - b));
    w_nanos(c, (int32_t)nanos);
    w_put(c, "Z\"", 2);
    return 0;
}

static int emit_duration(ctx *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m)
{
    int64_t secs = get_int_field(d, m, 1), nanos = get_int_field(d, m, 2);
    if (secs < -DUR_MAX_SEC || secs > DUR_MAX_SEC || nanos < -999999999 || nanos > 999999999 ||
        (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0))
        return fail(c, -EINVAL, "duration out of range");
    w_putc(c, '"');
    if (secs < 0 || nanos < 0)
        w_putc(c, '-');
    w_u64(c, (uint64_t)(secs < 0 ? -secs : secs));
    w_nanos(c, (int32_t)(nanos < 0 ? -nanos : nanos));
    w_put(c, "s\"", 2);
    return 0;
}

static int emit_fieldmask(ctx *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, 1);
    size_t n = *(const size_t *)CMEMBER(m, fd->quantifier_offset);
    char *const *paths = *(char *const *const *)CMEMBER(m, fd->offset);
    w_putc(c, '"');
    for (size_t i = 0; i < n; i++) {
        if (i)
            w_putc(c, ',');
        int up = 0;
        for (const char *p = paths[i]; *p; p++) {
            char ch = *p;
            // only names that survive the camelCase round trip are representable
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9' && !up) || ch == '.' ||
                  (ch == '_' && !up)))
                return fail(c, -EINVAL, "FieldMask path \"%.40s\" has no JSON form", paths[i]);
            if (ch == '_') {
                up = 1;
                continue;
            }
            if (up)
                ch = (char)(ch - 'a' + 'A');
            up = 0;
            w_putc(c, ch);
        }
        if (up)
            return fail(c, -EINVAL, "FieldMask path \"%.40s\" has no JSON form", paths[i]);
    }
    w_putc(c, '"');
    return 0;
}

static int emit_message(ctx *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m);
static int emit_repeated(ctx *c, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m);

/* The value of one singular field, or one element, stored at |slot|. */
static int emit_value(ctx *c, const ProtobufCFieldDescriptor *fd, const void *slot)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        w_i64(c, *(const int32_t *)slot);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        w_u64(c, *(const uint32_t *)slot);
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        w_putc(c, '"');
        w_i64(c, *(const int64_t *)slot);
        w_putc(c, '"');
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        w_putc(c, '"');
        w_u64(c, *(const uint64_t *)slot);
        w_putc(c, '"');
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        w_float(c, *(const float *)slot);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        w_double(c, *(const double *)slot);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)slot)
            w_put(c, "true", 4);
        else
            w_put(c, "false", 5);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)slot;
        if (is_null_enum(fd)) {
            w_put(c, "null", 4);
            return 0;
        }
        const ProtobufCEnumValue *ev =
            (c->flags & FSR_JSON_ENUMS_AS_INTS)
                ? NULL
                : protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
        if (ev) {
            w_putc(c, '"');
            w_put(c, ev->name, strlen(ev->name));
            w_putc(c, '"');
        } else {
            w_i64(c, v);
        }
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        if (!s)
            s = "";
        if (w_string(c, s, strlen(s)) != 0)
            return fail(c, -EINVAL, "string field is not valid UTF-8");
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        w_b64(c, slot);
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)slot;
        if (!sub) {
            w_put(c, "null", 4);
            return 0;
        }
        return emit_message(c, fd->descriptor, sub);
    }
    }
    return fail(c, -EINVAL, "unsupported field type");
}

/* A non-string map key: its decimal (or true/false) text, quoted. */
static void w_key_scalar(ctx *c, const ProtobufCFieldDescriptor *kfd, const void *slot)
{
    w_putc(c, '"');
    switch (kfd->type) {
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        w_u64(c, *(const uint32_t *)slot);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        w_i64(c, *(const int64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        w_u64(c, *(const uint64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)slot)
            w_put(c, "true", 4);
        else
            w_put(c, "false", 5);
        break;
    default: // int32, sint32, sfixed32 (protoc allows no other key types)
        w_i64(c, *(const int32_t *)slot);
        break;
    }
    w_putc(c, '"');
}

/*
 * A map field as a JSON object, in the entries' order.  protobuf-c keeps whatever the wire
 * held, so a message unpacked from a peer that sent a key twice would render it twice; our
 * own services never build such maps, and checking would cost a hash per entry.
 */
static int emit_map(ctx *c, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m)
{
    size_t n = *(const size_t *)CMEMBER(m, fd->quantifier_offset);
    const ProtobufCMessage *const *entries =
        *(const ProtobufCMessage *const *const *)CMEMBER(m, fd->offset);
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd = &ed->fields[0], *vfd = &ed->fields[1];
    int first = 1, rv;
    w_putc(c, '{');
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *e = entries[i];
        if (!e)
            continue;
        if (!first)
            w_putc(c, ',');
        first = 0;
        const void *kslot = CMEMBER(e, kfd->offset);
        if (kfd->type == PROTOBUF_C_TYPE_STRING) {
            const char *k = *(const char *const *)kslot;
            if (!k)
                k = "";
            push(c, SEG_KEY, k, strlen(k));
            if (w_string(c, k, strlen(k)) != 0)
                return fail(c, -EINVAL, "map key is not valid UTF-8");
        } else {
            push(c, SEG_INDEX, NULL, i);
            w_key_scalar(c, kfd, kslot);
        }
        w_putc(c, ':');
        if ((rv = emit_value(c, vfd, CMEMBER(e, vfd->offset))) != 0)
            return rv;
        pop(c);
    }
    w_putc(c, '}');
    return 0;
}

static int emit_repeated(ctx *c, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m)
{
    if (is_map(fd))
        return emit_map(c, fd, m);
    size_t n = *(const size_t *)CMEMBER(m, fd->quantifier_offset);
    const char *arr = *(const char *const *)CMEMBER(m, fd->offset);
    size_t es = elt_size(fd->type);
    w_putc(c, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            w_putc(c, ',');
        push(c, SEG_INDEX, NULL, i);
        int rv = emit_value(c, fd, arr + i * es);
        if (rv != 0)
            return rv;
        pop(c);
    }
    w_putc(c, ']');
    return 0;
}

/* Is singular |fd| at its proto3 default (and so omitted)? */
static int is_default(const ProtobufCFieldDescriptor *fd, const void *slot)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: // bitwise, so -0.0 is emitted
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)slot == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const uint64_t *)slot == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)slot == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)slot)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)slot == NULL;
    }
    return 1;
}

/* Should field |fd| of |m| appear in the output? */
/*
 * proto3 has no presence for scalars, so "set" means "not the default": such fields are
 * omitted unless FSR_JSON_EMIT_DEFAULTS.  Message fields are present when non-NULL, oneof
 * members when the case names them (even holding 0 or ""), and proto2 optional fields when
 * their has_ flag is set.
 */
static int is_present(const ctx *c, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m)
{
    const void *slot = CMEMBER(m, fd->offset);
    int defaults = (c->flags & FSR_JSON_EMIT_DEFAULTS) != 0;
    if (IS_ONEOF(fd))
        return CASE_OF(m, fd) == fd->id;
    if (IS_REPEATED(fd))
        return defaults || *(const size_t *)CMEMBER(m, fd->quantifier_offset) != 0;
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(const void *const *)slot != NULL;
    if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
        return 1;
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(const char *const *)slot;
            return s && ((const void *)s != fd->default_value || defaults);
        }
        return *(const protobuf_c_boolean *)CMEMBER(m, fd->quantifier_offset) || defaults;
    }
    return defaults || !is_default(fd, slot);
}

static void w_key(ctx *c, const char *name)
{
    size_t n = strlen(name);
    w_reserve(c, n + 3);
    char *o = c->buf + c->len;
    *o++ = '"';
    if (c->flags & FSR_JSON_PROTO_NAMES) {
        memcpy(o, name, n);
        o += n;
    } else {
        int up = 0;
        for (; *name; name++) {
            char ch = *name;
            if (ch == '_') {
                up = 1;
                continue;
            }
            if (up && ch >= 'a' && ch <= 'z')
                ch = (char)(ch - 'a' + 'A');
            up = 0;
            *o++ = ch;
        }
    }
    *o++ = '"';
    *o++ = ':';
    c->len = (size_t)(o - c->buf);
}

static int emit_message(ctx *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m)
{
    int rv = 0;
    if (++c->depth > OUT_MAX_DEPTH)
        return fail(c, -EINVAL, "messages nested deeper than %d", OUT_MAX_DEPTH);
    switch (wkt_of(d)) {
    case WKT_TIMESTAMP:
        rv = emit_timestamp(c, d, m);
        goto out;
    case WKT_DURATION:
        rv = emit_duration(c, d, m);
        goto out;
    case WKT_FIELDMASK:
        rv = emit_fieldmask(c, d, m);
        goto out;
    case WKT_WRAPPER: {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, 1);
        rv = emit_value(c, fd, CMEMBER(m, fd->offset));
        goto out;
    }
    case WKT_STRUCT:
    case WKT_LIST:
        rv = emit_repeated(c, protobuf_c_message_descriptor_get_field(d, 1), m);
        goto out;
    case WKT_VALUE: {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, 1);
        uint32_t kind = fd ? CASE_OF(m, fd) : 0;
        fd = kind ? protobuf_c_message_descriptor_get_field(d, kind) : NULL;
        if (!fd) {
            rv = fail(c, -EINVAL, "google.protobuf.Value has no kind set");
        } else if (fd->type == PROTOBUF_C_TYPE_DOUBLE &&
                   !isfinite(*(const double *)CMEMBER(m, fd->offset))) {
            rv = fail(c, -EINVAL, "google.protobuf.Value cannot hold NaN or Infinity");
        } else if (fd->type == PROTOBUF_C_TYPE_ENUM) {
            w_put(c, "null", 4);
        } else {
            rv = emit_value(c, fd, CMEMBER(m, fd->offset));
        }
        goto out;
    }
    case WKT_ANY:
        rv = fail(c, -EINVAL, "google.protobuf.Any is not supported");
        goto out;
    case WKT_NONE:
        break;
    }
    w_putc(c, '{');
    int first = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!is_present(c, fd, m))
            continue;
        if (!first)
            w_putc(c, ',');
        first = 0;
        w_key(c, fd->name);
        push(c, SEG_FIELD, fd->name, 0);
        rv = IS_REPEATED(fd) ? emit_repeated(c, fd, m) : emit_value(c, fd, CMEMBER(m, fd->offset));
        if (rv != 0)
            goto out;
        pop(c);
    }
    w_putc(c, '}');
out:
    c->depth--;
    return rv;
}

static int finish_output(ctx *c, int rv, char **out, size_t *len)
{
    if (rv != 0) {
        free(c->buf);
        return rv;
    }
    w_putc(c, '\0');
    *out = c->buf;
    if (len)
        *len = c->len - 1;
    return 0;
}

int fsr_pb_to_json(const ProtobufCMessage *msg, const fsr_json_opts *opts, char **out, size_t *len,
                   fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, NULL, err);
    c.flags = opts ? opts->flags : 0;
    int rv = emit_message(&c, msg->descriptor, msg);
    return finish_output(&c, rv, out, len);
}

int fsr_pb_field_to_json(const ProtobufCMessage *msg, const char *field_path,
                         const fsr_json_opts *opts, char **out, size_t *len, fsr_json_error *err)
{
    ctx c;
    ctx_init(&c, NULL, err);
    c.flags = opts ? opts->flags : 0;
    ProtobufCMessage *parent;
    const ProtobufCMessageDescriptor *pd;
    const ProtobufCFieldDescriptor *fd;
    // without |create|, resolve_path never writes through the message
    ProtobufCMessage *root = (ProtobufCMessage *)(uintptr_t)msg;
    if (resolve_path(&c, msg->descriptor, root, field_path, strlen(field_path), 0, &parent, &pd,
                     &fd) != 0)
        return -EINVAL;
    /*
     * An unset parent, or another member of the oneof is set: render the field's default
     * from a freshly initialised parent instead of reading a union slot that isn't ours.
     */
    void *tmp = NULL;
    if (!parent || (IS_ONEOF(fd) && CASE_OF(parent, fd) != fd->id)) {
        tmp = fsr_xcalloc(1, pd->sizeof_message);
        protobuf_c_message_init(pd, tmp);
        parent = tmp;
    }
    int rv;
    if (IS_REPEATED(fd))
        rv = emit_repeated(&c, fd, parent);
    else
        rv = emit_value(&c, fd, CMEMBER(parent, fd->offset));
    free(tmp);
    return finish_output(&c, rv, out, len);
}
