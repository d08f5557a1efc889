/* SPDX-License-Identifier: MIT */
/* The proto3 JSON mapping between JSON text and protobuf-c messages, by reflection. */
#ifndef FSR_JSON_H
#define FSR_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/*
 * This module converts between JSON and any protobuf-c message using only the descriptors
 * (ProtobufCMessageDescriptor / ProtobufCFieldDescriptor): there is no generated code per
 * message.  It follows https://protobuf.dev/programming-guides/proto3/#json:
 *
 *  - Field names: output uses lowerCamelCase (protoc's json_name rule: drop each '_' and
 *    upper-case the letter after it; protobuf-c 1.4 does not keep custom json_name options).
 *    Input accepts the lowerCamelCase name and the original proto (snake_case) name.
 *  - int64, uint64, sint64, fixed64, sfixed64: strings on output; strings or JSON numbers on
 *    input, converted exactly (no trip through a double).  A JSON number for an integer field
 *    must be integral; a number with a fraction part is an error, and integral numbers written
 *    with a fraction or exponent ("1e3") are accepted only up to 2^53, where they are exact.
 *    JSON integer literals outside the signed 64-bit range fail to parse (jansson keeps
 *    integers as long long), so uint64 values above 2^63-1 must travel as strings.
 *  - 32-bit integers: numbers on output; numbers or strings on input, range-checked.
 *  - Enums: value names on output (numbers for values the descriptor does not know); names or
 *    numbers on input.  Unknown names and unknown numbers are both rejected.
 *  - float/double: JSON numbers printed with the fewest digits that read back to the same
 *    value; NaN and infinities as the strings "NaN", "Infinity", "-Infinity".  Input takes
 *    numbers, those strings, or numeric strings ("1.5").
 *  - bytes: standard base64 with padding on output; standard or URL-safe, padded or not, on
 *    input.
 *  - Defaults (proto3 fields without presence: 0, "", false, the zero enum, empty repeated
 *    and map fields) are omitted unless FSR_JSON_EMIT_DEFAULTS.  Unset message fields are
 *    always omitted; a set oneof member is always emitted, even with a default value.
 *  - Repeated fields are arrays; maps (protobuf-c map fields: repeated XxxEntry messages
 *    with key and value) are objects keyed by the key's text.
 *  - Well-known types: google.protobuf.Timestamp as an RFC 3339 string in UTC
 *    ("2024-01-02T03:04:05Z"; 3, 6 or 9 fraction digits only when nanos != 0; input accepts
 *    any offset), Duration as "1.500s", the wrappers (DoubleValue ... BytesValue) as their
 *    plain value, Struct/Value/ListValue as arbitrary JSON, Empty as {}, FieldMask as a
 *    comma-separated list of lowerCamelCase paths.  google.protobuf.Any is rejected (both
 *    directions).
 *  - null on input means "leave the default", except for google.protobuf.Value (a null
 *    Value) and google.protobuf.NullValue fields.  null elements of repeated fields and null
 *    map values are errors (again except for Value).
 *
 * Input is strict, since every REST request goes through it: unknown fields, duplicate keys,
 * a field given twice (by both of its names), two members of one oneof, wrong JSON types,
 * out-of-range numbers, invalid UTF-8 and nesting deeper than FSR_JSON_MAX_DEPTH are all
 * errors that name the offending field.
 *
 * Memory: messages built from JSON are allocated entirely through the ProtobufCAllocator the
 * caller passes (NULL selects malloc/free, which is what protobuf-c's own default allocator
 * uses, so such messages can be freed with protobuf_c_message_free_unpacked(msg, NULL)).
 * Strings and bytes are copied into allocator memory; nothing points into the JSON text.  On
 * failure everything allocated so far is released through the allocator's free (a no-op for
 * an arena).  With an arena allocator (fsr_arena_pb_allocator()) never call
 * *__free_unpacked; the arena releases the message.
 *
 * All functions are reentrant and keep no global state; they may run on any loop thread.
 * Number formatting and parsing assume the default "C" LC_NUMERIC locale (no service calls
 * setlocale()).
 */

/* JSON nesting (objects and arrays, counting the outermost) deeper than this is rejected. */
#define FSR_JSON_MAX_DEPTH 64

/*
 * Why a conversion failed.  |field| is the lowerCamelCase JSON path of the offending field,
 * e.g. "bars[3].close", "weights[\"AAPL\"]" or "scalars.foo" (for an unknown field, the path
 * ends with the name as the client sent it); "" when the problem is the document itself
 * (malformed JSON, not an object).  |message| is client-safe English text, e.g.
 * "unknown field \"foo\"" or "value out of range for int32".  Both are NUL-terminated valid
 * UTF-8, truncated to fit.
 */
typedef struct fsr_json_error {
    char field[128];
    char message[256];
} fsr_json_error;

/* Output options: an OR of the flags below.  A NULL |opts| means all flags clear. */
typedef struct fsr_json_opts {
    unsigned flags;
} fsr_json_opts;

/* Emit proto3 default values too: 0, "", false, enum zero, [] and {} (not unset messages). */
#define FSR_JSON_EMIT_DEFAULTS 0x1u
/* Use the proto field names ("coupon_rate") instead of lowerCamelCase ("couponRate"). */
#define FSR_JSON_PROTO_NAMES 0x2u
/* Emit enums as numbers instead of names. */
#define FSR_JSON_ENUMS_AS_INTS 0x4u

/*
 * Parses |len| bytes of JSON text at |json| (no NUL needed) as a message of type |desc| and
 * stores the new message, allocated with |alloc| (NULL: malloc), in *|out|.  The text must be
 * a single JSON object (a request body); duplicate keys are rejected.
 *
 * Returns 0, or one of the following negative codes (*|out| untouched, *|err| filled when
 * |err| is not NULL):
 *
 * FSR_E_PROTOCOL
 *     The text is not valid JSON, not an object, or does not match |desc| (see above).  The
 *     gateway answers 400 INVALID_ARGUMENT with err->field and err->message.
 * -ENOMEM
 *     |alloc| returned NULL.
 */
int fsr_json_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                   ProtobufCAllocator *alloc, ProtobufCMessage **out, fsr_json_error *err);

/*
 * Like fsr_json_to_pb() for a document already parsed by jansson: converts |value| (borrowed,
 * not modified) to a new message of type |desc| in *|out|.  |value| must be what the mapping
 * expects for |desc|: an object for ordinary messages, a string for Timestamp, and so on.
 * Jansson's own parser limits nesting; |value| is also held to FSR_JSON_MAX_DEPTH.
 *
 * Returns 0, FSR_E_PROTOCOL or -ENOMEM as fsr_json_to_pb().
 */
int fsr_json_object_to_pb(const ProtobufCMessageDescriptor *desc, json_t *value,
                          ProtobufCAllocator *alloc, ProtobufCMessage **out, fsr_json_error *err);

/*
 * Parses |len| bytes of JSON text and merges it into the existing message |msg|, for REST
 * routes whose body maps to one field (`body: "bars"`).  |field_path| is a dotted path of
 * field names (each lowerCamelCase or snake_case), e.g. "bars" or "terms.schedule"; missing
 * intermediate messages are created.  NULL or "" means the whole message, and the text must
 * then be an object.  Merging follows protobuf: scalars and strings are replaced, repeated
 * and map fields appended to, message fields merged field by field; setting a oneof member
 * while another member of the same oneof is set is an error.
 *
 * Returns 0, FSR_E_PROTOCOL (also for an unknown |field_path|) or -ENOMEM.  On failure |msg|
 * may be partly merged but stays a valid message (it can still be freed normally).
 */
int fsr_json_merge_pb(ProtobufCMessage *msg, const char *field_path, const char *json, size_t len,
                      ProtobufCAllocator *alloc, fsr_json_error *err);

/*
 * Allocates a message of type |desc| with |alloc| (NULL: malloc), initialised with
 * protobuf_c_message_init(), and stores it in *|out|: the empty request that path and query
 * parameters are then merged into.  Returns 0, or -ENOMEM (*|out| untouched).
 */
int fsr_pb_new(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
               ProtobufCMessage **out);

/*
 * Sets one field of |msg| from its textual form, for path variables and query parameters.
 * |field_path| is dotted ("terms.coupon_rate" or "terms.couponRate"); missing intermediate
 * messages are created (they must be singular message fields).  The target may be:
 *
 *  - a scalar: integers in decimal (range-checked), floats as decimal numbers or "NaN",
 *    "Infinity", "-Infinity", bools as "true"/"false"/"1"/"0";
 *  - an enum, by value name or number;
 *  - a string (copied; must be valid UTF-8) or bytes (base64, standard or URL-safe);
 *  - a Timestamp, Duration or FieldMask (their JSON string forms) or a wrapper type;
 *  - a repeated field of any of those: |value| is appended as one more element.
 *
 * Singular values replace what was there.  Appending one element copies the array, so to
 * add many values to one repeated field use fsr_pb_merge_query(), which sizes it once.
 *
 * Returns 0, FSR_E_PROTOCOL (unknown field, a map/message target, or a bad value; *|err|
 * names the field) or -ENOMEM.  On failure |msg| remains valid.
 */
int fsr_pb_set_field_from_string(ProtobufCMessage *msg, const char *field_path, const char *value,
                                 ProtobufCAllocator *alloc, fsr_json_error *err);

/*
 * Merges a URL query string into |msg|: |query| is the raw text after '?' (|len| bytes,
 * application/x-www-form-urlencoded: pairs split on '&', '+' is a space, %XX escapes), each
 * key a dotted field path as for fsr_pb_set_field_from_string().  Repeated keys append to
 * repeated fields (each array is allocated once); a repeated key for a singular field is an
 * error.  Empty pairs ("a=1&&b=2") are skipped; "k" alone means "k=".
 *
 * Returns 0, FSR_E_PROTOCOL (malformed escape, unknown key, bad value) or -ENOMEM.  On
 * failure |msg| may be partly merged but remains valid.
 */
int fsr_pb_merge_query(ProtobufCMessage *msg, const char *query, size_t len,
                       ProtobufCAllocator *alloc, fsr_json_error *err);

/*
 * Renders |msg| as JSON text per |opts| (NULL: defaults).  On success *|out| is a
 * malloc()ed, NUL-terminated string the caller releases with free(), and *|len| (if |len| is
 * not NULL) its length without the NUL.  A message renders as an object, except the
 * well-known types with another form (a Timestamp renders as a JSON string).
 *
 * Returns 0, or -EINVAL when |msg| cannot be represented (*|out| untouched; *|err| names the
 * field): a string field holding invalid UTF-8, a Timestamp or Duration out of range, a
 * google.protobuf.Value with no kind set or holding NaN/Infinity, a google.protobuf.Any, or
 * messages nested deeper than 256.  Out of memory aborts (STYLE §4).
 */
int fsr_pb_to_json(const ProtobufCMessage *msg, const fsr_json_opts *opts, char **out, size_t *len,
                   fsr_json_error *err);

/*
 * Renders just one field of |msg|, for routes with `response_body: "field"`: |field_path| is
 * dotted as above.  The field is rendered even when it holds its default (a repeated field
 * with no elements renders as [], an unset message as null).  Output and errors as
 * fsr_pb_to_json(); an unknown |field_path| is -EINVAL.
 */
int fsr_pb_field_to_json(const ProtobufCMessage *msg, const char *field_path,
                         const fsr_json_opts *opts, char **out, size_t *len, fsr_json_error *err);

#endif /* FSR_JSON_H */
