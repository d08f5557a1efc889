# SPDX-License-Identifier: MIT
"""protoc-gen-fsr: the OpenAPI 3.0.3 document of the REST routes.

Schemas follow the proto3 JSON mapping the gateway speaks: lowerCamelCase names, 64-bit
integers as strings, enums as value names, well-known types in their JSON forms.  Only the
messages reachable from a route become components.schemas.
"""

import json
import re

from fsr_model import FDP, GenError, collect_routes, lower_camel, openapi_path

SCALARS = {
    FDP.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FDP.TYPE_FLOAT: {"type": "number", "format": "float"},
    FDP.TYPE_INT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FDP.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FDP.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0,
                      "maximum": 4294967295},
    FDP.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0,
                       "maximum": 4294967295},
    FDP.TYPE_INT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SINT64: {"type": "string", "format": "int64"},
    FDP.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FDP.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FDP.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FDP.TYPE_BOOL: {"type": "boolean"},
    FDP.TYPE_STRING: {"type": "string"},
    FDP.TYPE_BYTES: {"type": "string", "format": "byte"},
}

WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
                                 "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "example": "name,targets"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "format": "float", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0,
                                    "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}

# Served by the gateway itself, outside the protos; no API key needed.
PUBLIC_PATHS = {
    "/health": {"get": {
        "tags": ["Operations"], "operationId": "Gateway_Health",
        "summary": "Health of the gateway and each upstream service",
        "description": "200 when the gateway and every upstream service answer, 503 otherwise.",
        "security": [],
        "responses": {
            "200": {"description": "Healthy.", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/HealthStatus"}}}},
            "503": {"description": "An upstream service is unhealthy.",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/HealthStatus"}}}},
        }}},
    "/metrics": {"get": {
        "tags": ["Operations"], "operationId": "Gateway_Metrics",
        "summary": "Prometheus metrics",
        "description": "The gateway's metrics in the Prometheus text exposition format.",
        "security": [],
        "responses": {"200": {"description": "Prometheus text format 0.0.4.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {
        "tags": ["Operations"], "operationId": "Gateway_OpenApi",
        "summary": "This OpenAPI document",
        "security": [],
        "responses": {"200": {"description": "The OpenAPI 3.0.3 document.",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/docs": {"get": {
        "tags": ["Operations"], "operationId": "Gateway_Docs",
        "summary": "API documentation page",
        "description": "An HTML page rendering /openapi.json (works offline).",
        "security": [],
        "responses": {"200": {"description": "HTML.",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}}},
}

DESCRIPTION = """\
REST/JSON API of the financial-services platform, served by the gateway and generated from \
the gRPC protos (google.api.http annotations): the gRPC API and this one are the same \
contract.

JSON follows the proto3 JSON mapping: responses use lowerCamelCase names (requests also \
accept the proto's snake_case), 64-bit integers travel as strings, enums as names, \
timestamps as RFC 3339. Unknown request fields are rejected with 400.

Authenticate with `Authorization: Bearer <api key>`; `/health`, `/metrics`, \
`/openapi.json` and `/docs` need no key. Errors carry the gRPC code: \
`{"code": 3, "message": "...", "details": [{"field": "couponRate", "description": \
"must be >= 0"}]}`. Every response has an `X-Request-Id`."""


def humanize(name):
    """"GetEquityQuote" -> "Get equity quote"."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+", name)
    if not words:
        return name
    return " ".join([words[0]] + [w.lower() if not w.isupper() or len(w) == 1 else w
                                  for w in words[1:]])


def summary_of(comment, fallback):
    if not comment:
        return fallback
    first = comment.strip().split("\n\n")[0].replace("\n", " ").strip()
    m = re.match(r"(.+?[.!?])(\s|$)", first)
    s = m.group(1) if m else first
    s = s.rstrip(".")
    if len(s) <= 120:
        return s
    return s[:117].rsplit(" ", 1)[0].rstrip(",;:") + "..."


class OpenApi:
    def __init__(self, model, version):
        self.model = model
        self.version = version
        self.schemas = {}  # component name -> schema (filled lazily)
        self._pending = []

    # -- schemas --

    def ref(self, t):
        """$ref to the component of message or enum |t| (queued for emission)."""
        if t.full not in self.schemas:
            self.schemas[t.full] = None
            self._pending.append(t)
        return {"$ref": "#/components/schemas/" + t.full}

    def type_schema(self, t):
        """Schema of a message/enum type used as a value: inline for well-known types."""
        if t.full in WELL_KNOWN:
            return dict(WELL_KNOWN[t.full])
        return self.ref(t)

    def field_schema(self, msg, fld, with_desc=True):
        if fld.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            t = self.model.type(fld.type_name)
            if t.is_map_entry:
                val = next(f for f in t.proto.field if f.number == 2)
                return self._describe({"type": "object",
                                       "additionalProperties": self.field_schema(t, val, False)},
                                      msg, fld, with_desc)
            item = self.type_schema(t)
        elif fld.type == FDP.TYPE_ENUM:
            item = self.type_schema(self.model.type(fld.type_name))
        else:
            item = dict(SCALARS[fld.type])
        if fld.label == FDP.LABEL_REPEATED:
            item = {"type": "array", "items": item}
        return self._describe(item, msg, fld, with_desc)

    def _describe(self, schema, msg, fld, with_desc):
        if not with_desc:
            return schema
        idx = list(msg.proto.field).index(fld)
        desc = self.model.field_comment(msg, idx)
        if fld.HasField("oneof_index"):
            group = msg.proto.oneof_decl[fld.oneof_index].name
            others = [lower_json(f) for f in msg.proto.field
                      if f.HasField("oneof_index") and f.oneof_index == fld.oneof_index
                      and f is not fld]
            if others:
                note = "Oneof `%s`: set at most one of `%s` and %s." % (
                    group, lower_json(fld), ", ".join("`%s`" % o for o in others))
                desc = (desc + "\n\n" + note) if desc else note
        if fld.options.deprecated:
            schema["deprecated"] = True
        if not desc:
            return schema
        if "$ref" in schema:
            # Siblings of $ref are ignored in OpenAPI 3.0: wrap it.
            return {"description": desc, "allOf": [schema]}
        schema["description"] = desc
        return schema

    def message_schema(self, t, skip=()):
        props = {}
        for fld in t.proto.field:
            if fld.name in skip:
                continue
            props[lower_json(fld)] = self.field_schema(t, fld)
        s = {"type": "object"}
        if t.path and self.model.comment(t.file, t.path):
            s["description"] = self.model.comment(t.file, t.path)
        if props:
            s["properties"] = props
        return s

    def enum_schema(self, t):
        names = [v.name for v in t.proto.value]
        s = {"type": "string", "enum": names}
        desc = self.model.comment(t.file, t.path)
        lines = []
        for i, v in enumerate(t.proto.value):
            c = self.model.comment(t.file, t.path + [2, i])
            if c:
                lines.append("- `%s`: %s" % (v.name, c.replace("\n", " ")))
        if lines:
            desc = (desc + "\n\n" if desc else "") + "\n".join(lines)
        if desc:
            s["description"] = desc
        return s

    def drain(self):
        while self._pending:
            t = self._pending.pop(0)
            self.schemas[t.full] = (self.message_schema(t) if t.kind == "message"
                                    else self.enum_schema(t))

    # -- parameters --

    def query_params(self, msg, skip, prefix="", depth=0):
        """Non-path, non-body request fields as query parameters (nested messages dotted)."""
        params = []
        for fld in msg.proto.field:
            if not prefix and fld.name in skip:
                continue
            name = prefix + lower_json(fld)
            if fld.type == FDP.TYPE_MESSAGE:
                t = self.model.type(fld.type_name)
                if t.is_map_entry:
                    continue  # maps cannot travel in a query string
                if t.full in WELL_KNOWN:
                    schema = self.field_schema(msg, fld, False)
                    if schema.get("type") in ("object", None) or (
                            schema.get("type") == "array" and
                            schema["items"].get("type") in ("object", None)):
                        continue
                elif fld.label != FDP.LABEL_REPEATED and depth < 3:
                    params += self.query_params(t, (), name + ".", depth + 1)
                    continue
                else:
                    continue
            else:
                schema = self.field_schema(msg, fld, False)
            p = {"name": name, "in": "query", "required": False, "schema": schema}
            desc = self.model.field_comment(msg, list(msg.proto.field).index(fld))
            if desc:
                p["description"] = desc
            if schema.get("type") == "array":
                p["style"] = "form"
                p["explode"] = True
            params.append(p)
        return params

    # -- the document --

    def build(self):
        routes = collect_routes(self.model)
        paths = {}
        tags = []
        short = {}
        for s in self.model.services:
            short.setdefault(s.name, []).append(s)
        tag_of = {}
        for s in self.model.services:
            if not any(m.http for m in s.methods):
                continue
            tag = s.name if len(short[s.name]) == 1 else s.full
            tag_of[s.full] = tag
            t = {"name": tag}
            t["description"] = s.comment or "%s (gRPC service %s)." % (humanize(s.name), s.full)
            tags.append(t)

        op_ids = {}
        for r in routes:
            m = r.method
            svc = m.service
            base_id = "%s_%s" % (svc.name, m.name)
            op_ids[base_id] = op_ids.get(base_id, 0) + 1
            op_id = base_id if op_ids[base_id] == 1 else "%s_%d" % (base_id, op_ids[base_id])
            op = {"tags": [tag_of[svc.full]], "operationId": op_id,
                  "summary": summary_of(m.comment, humanize(m.name))}
            desc = m.comment or ""
            note = "gRPC: `%s`%s." % (m.path, " (server-streaming)" if m.server_streaming else "")
            op["description"] = (desc + "\n\n" + note) if desc else note
            params = []
            top_path_fields = set()
            for v in r.vars:
                chain = self.model.find_field(m.input, v)
                top_path_fields.add(chain[0].name)
                owner = m.input
                for f in chain[:-1]:
                    owner = self.model.type(f.type_name)
                p = {"name": v, "in": "path", "required": True,
                     "schema": self.field_schema(owner, chain[-1], False)}
                d = self.model.field_comment(owner, list(owner.proto.field).index(chain[-1]))
                if d:
                    p["description"] = d
                params.append(p)
            if r.body == "*":
                pass  # every other field travels in the body
            else:
                skip = set(top_path_fields)
                if r.body:
                    skip.add(r.body)
                params += self.query_params(m.input, skip)
            if r.verb == "POST" and not m.idempotent:  # writes that create
                params.append({"$ref": "#/components/parameters/IdempotencyKey"})
            if params:
                op["parameters"] = params

            if r.body == "*":
                body = self.message_schema(m.input, skip=top_path_fields)
                body.pop("description", None)
                if top_path_fields:
                    schema = body
                else:
                    schema = self.ref(m.input)
                op["requestBody"] = {
                    "required": "properties" in body,
                    "content": {"application/json": {"schema": schema}}}
            elif r.body:
                fld = self.model.find_field(m.input, r.body)[0]
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {
                        "schema": self.field_schema(m.input, fld, False)}}}

            if r.response_body:
                fld = self.model.find_field(m.output, r.response_body)[0]
                out_schema = self.field_schema(m.output, fld, False)
            else:
                out_schema = self.type_schema(m.output)
            ok_desc = summary_of(self.model.comment(m.output.file, m.output.path), "OK")
            responses = {"200": {
                "description": ok_desc + ("." if not ok_desc.endswith(".") else ""),
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/XRequestId"}},
                "content": {"application/json": {"schema": out_schema}}}}
            responses["400"] = {"$ref": "#/components/responses/BadRequest"}
            responses["401"] = {"$ref": "#/components/responses/Unauthenticated"}
            if r.vars:
                responses["404"] = {"$ref": "#/components/responses/NotFound"}
            responses["default"] = {"$ref": "#/components/responses/Error"}
            op["responses"] = responses

            item = paths.setdefault(openapi_path(r.pattern), {})
            verb = r.verb.lower()
            if verb in item:
                raise GenError("two routes for %s %s" % (r.verb, r.pattern))
            item[verb] = op
        self.drain()

        used_public = False
        for p, item in PUBLIC_PATHS.items():
            if p not in paths:
                paths[p] = item
                used_public = True
        if used_public:
            tags.append({"name": "Operations",
                         "description": "Served by the gateway itself; no API key needed."})

        schemas = dict(sorted(self.schemas.items()))
        schemas["Error"] = {
            "type": "object",
            "description": "An error: the gRPC status code and a client-safe message.",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer", "format": "int32",
                         "description": "gRPC status code (3 INVALID_ARGUMENT, 5 NOT_FOUND, ...)."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "$ref": "#/components/schemas/FieldViolation"}},
            }}
        schemas["FieldViolation"] = {
            "type": "object",
            "description": "A bad request field.",
            "properties": {
                "field": {"type": "string", "description": "lowerCamelCase field path."},
                "description": {"type": "string"},
            }}
        if used_public:
            schemas["HealthStatus"] = {
                "type": "object",
                "description": "Overall status plus each upstream service's.",
                "properties": {
                    "status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]},
                    "services": {"type": "object",
                                 "additionalProperties": {"type": "string",
                                                          "enum": ["SERVING", "NOT_SERVING"]}},
                }}

        def err(desc):
            return {"description": desc,
                    "headers": {"X-Request-Id": {"$ref": "#/components/headers/XRequestId"}},
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Error"}}}}

        return {
            "openapi": "3.0.3",
            "info": {
                "title": "Financial services platform API",
                "version": self.version,
                "description": DESCRIPTION,
                "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
            },
            "servers": [{"url": "http://localhost:8000", "description": "Local gateway"}],
            "security": [{"bearerAuth": []}],
            "tags": tags,
            "paths": paths,
            "components": {
                "securitySchemes": {"bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "`Authorization: Bearer <api key>`"}},
                "parameters": {"IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "A retry with the same key and body returns the first "
                                   "result and creates nothing new.",
                    "schema": {"type": "string", "maxLength": 255}}},
                "headers": {"XRequestId": {
                    "description": "The request id (echoed if the client sent one).",
                    "schema": {"type": "string"}}},
                "responses": {
                    "BadRequest": err("Invalid argument (INVALID_ARGUMENT, "
                                      "FAILED_PRECONDITION)."),
                    "Unauthenticated": err("Missing or unknown API key."),
                    "NotFound": err("No such resource (or not the caller's)."),
                    "Error": err("Any other error; the HTTP status maps the gRPC code."),
                },
                "schemas": schemas,
            },
        }


def lower_json(fld):
    return fld.json_name or lower_camel(fld.name)


def generate_openapi(model, version):
    doc = OpenApi(model, version).build()
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
