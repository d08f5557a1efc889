# SPDX-License-Identifier: MIT
"""protoc-gen-fsr: the view of a CodeGeneratorRequest every generator works from.

Indexes every message, enum and service protoc handed us (including imports), keeps their
comments (SourceCodeInfo), derives protobuf-c's C names (the same mangling as protoc-c's
c_helpers.cc, so the generated code can name its types and descriptors) and decodes the
google.api.http rules, which are validated here once for both the route table and OpenAPI.
"""

import re

from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto

# google.api.http: extension 72295728 of google.protobuf.MethodOptions (google/api/annotations).
HTTP_RULE_FIELD = 72295728
HTTP_VERBS = ("get", "put", "post", "delete", "patch")

# C keywords protoc-c escapes in field names; we escape method names the same way.
C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while bool true false delete new class
""".split())


class GenError(Exception):
    """A problem in the protos: reported through CodeGeneratorResponse.error."""


# ---- protobuf-c's name mangling (protoc-c/c_helpers.cc) --------------------------------

def camel_to_lower(name):
    """CamelToLower: "GetDV01" -> "get_dv01" (an '_' before an upper after a non-upper)."""
    out = []
    was_upper = True
    for ch in name:
        is_upper = ch.isupper()
        if is_upper:
            if not was_upper:
                out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
        was_upper = is_upper
    return "".join(out)


def to_camel(name):
    """ToCamel: "bond_analytics" -> "BondAnalytics", "v1" -> "V1"."""
    out = []
    upper = True
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


def full_name_to_c(full):
    """"equity.v1.GetQuoteRequest" -> "Equity__V1__GetQuoteRequest" (the C type)."""
    return "__".join(to_camel(p) for p in full.split(".") if p)


def full_name_to_lower(full):
    """"equity.v1.GetQuoteRequest" -> "equity__v1__get_quote_request"."""
    return "__".join(camel_to_lower(p) for p in full.split(".") if p)


def c_ident(name):
    return name + "_" if name in C_KEYWORDS else name


def lower_camel(name):
    """protoc's default json_name: "coupon_rate" -> "couponRate"."""
    out = []
    upper = False
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


# ---- wire format, for the one extension we read --------------------------------------

def _varint(buf, pos):
    shift = 0
    val = 0
    while True:
        if pos >= len(buf):
            raise GenError("truncated varint in options")
        b = buf[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, pos
        shift += 7


def wire_fields(buf):
    """Yields (field number, wire type, value) of a serialized message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise GenError("unsupported wire type %d in options" % wt)
        yield num, wt, val


class HttpRule:
    """A decoded google.api.HttpRule (one binding: additional_bindings are flattened)."""

    def __init__(self, verb, pattern, body, response_body):
        self.verb = verb  # "GET", ...
        self.pattern = pattern
        self.body = body
        self.response_body = response_body


def parse_http_rule(buf, top=True):
    """Returns the bindings of a serialized HttpRule: itself then its additional_bindings."""
    verb = pattern = None
    body = response_body = ""
    extra = []
    for num, wt, val in wire_fields(buf):
        if wt != 2:
            continue
        if 2 <= num <= 6:  # get put post delete patch
            verb, pattern = HTTP_VERBS[num - 2].upper(), val.decode()
        elif num == 8:  # custom {kind, path}
            kind = path = ""
            for n2, w2, v2 in wire_fields(val):
                if w2 == 2 and n2 == 1:
                    kind = v2.decode()
                elif w2 == 2 and n2 == 2:
                    path = v2.decode()
            verb, pattern = kind.upper(), path
        elif num == 7:
            body = val.decode()
        elif num == 12:
            response_body = val.decode()
        elif num == 11:
            if not top:
                raise GenError("additional_bindings may not nest")
            extra.extend(parse_http_rule(val, top=False))
    rules = []
    if verb is not None:
        rules.append(HttpRule(verb, pattern, body, response_body))
    return rules + extra


# ---- the model ---------------------------------------------------------------------

class Type:
    """A message or enum, by full name without the leading dot."""

    def __init__(self, kind, full, proto, file, path):
        self.kind = kind  # "message" | "enum"
        self.full = full
        self.proto = proto  # DescriptorProto | EnumDescriptorProto
        self.file = file  # FileDescriptorProto
        self.path = path  # SourceCodeInfo path
        self.c_type = full_name_to_c(full)
        self.c_lower = full_name_to_lower(full)
        self.c_descriptor = self.c_lower + "__descriptor"

    @property
    def is_map_entry(self):
        return self.kind == "message" and self.proto.options.map_entry


class Method:
    def __init__(self, service, proto, index, model):
        self.service = service
        self.proto = proto
        self.name = proto.name
        self.index = index
        self.c_name = c_ident(camel_to_lower(proto.name))
        self.input = model.type(proto.input_type)
        self.output = model.type(proto.output_type)
        self.client_streaming = proto.client_streaming
        self.server_streaming = proto.server_streaming
        level = proto.options.idempotency_level
        self.no_side_effects = level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
        self.idempotent = level in (descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
                                    descriptor_pb2.MethodOptions.IDEMPOTENT)
        self.path = "/%s/%s" % (service.full, proto.name)
        self.comment = model.comment(service.file, service.path + [2, index])
        self.http = []
        raw = proto.options.SerializeToString()
        for num, wt, val in wire_fields(raw):
            if num == HTTP_RULE_FIELD and wt == 2:
                self.http.extend(parse_http_rule(val))

    @property
    def supported(self):
        """Unary and server-streaming methods get typed stubs; the runtime has no others."""
        return not self.client_streaming

    def flags_c(self):
        flags = []
        if self.idempotent:
            flags.append("FSR_M_IDEMPOTENT")
        if self.no_side_effects:
            flags.append("FSR_M_NO_SIDE_EFFECTS")
        if self.server_streaming:
            flags.append("FSR_M_SERVER_STREAM")
        return " | ".join(flags) if flags else "0"


class Service:
    def __init__(self, file, proto, index, model):
        self.file = file
        self.proto = proto
        self.name = proto.name
        self.full = (file.package + "." if file.package else "") + proto.name
        self.path = [6, index]
        self.prefix = (file.package.replace(".", "_") + "_" if file.package else "") + \
            camel_to_lower(proto.name)
        self.c_descriptor = full_name_to_lower(self.full) + "__descriptor"
        self.comment = model.comment(file, self.path)
        self.methods = [Method(self, m, i, model) for i, m in enumerate(proto.method)]


class Model:
    def __init__(self, request):
        self.request = request
        self.files = {f.name: f for f in request.proto_file}
        self.to_generate = [self.files[n] for n in request.file_to_generate]
        self.types = {}
        self._comments = {}
        for f in request.proto_file:
            self._index_comments(f)
            pkg = f.package
            for i, m in enumerate(f.message_type):
                self._index_message(f, pkg, m, [4, i])
            for i, e in enumerate(f.enum_type):
                full = (pkg + "." if pkg else "") + e.name
                self.types[full] = Type("enum", full, e, f, [5, i])
        self.services = []
        for f in self.to_generate:
            for i, s in enumerate(f.service):
                self.services.append(Service(f, s, i, self))

    def _index_message(self, f, scope, m, path):
        full = (scope + "." if scope else "") + m.name
        self.types[full] = Type("message", full, m, f, path)
        for i, n in enumerate(m.nested_type):
            self._index_message(f, full, n, path + [3, i])
        for i, e in enumerate(m.enum_type):
            efull = full + "." + e.name
            self.types[efull] = Type("enum", efull, e, f, path + [4, i])

    def _index_comments(self, f):
        table = {}
        for loc in f.source_code_info.location:
            text = loc.leading_comments or loc.trailing_comments
            if text:
                table[tuple(loc.path)] = clean_comment(text)
        self._comments[f.name] = table

    def comment(self, file, path):
        return self._comments.get(file.name, {}).get(tuple(path), "")

    def type(self, name):
        """Looks up ".pkg.Msg" or "pkg.Msg"."""
        t = self.types.get(name.lstrip("."))
        if t is None:
            raise GenError("unknown type %s" % name)
        return t

    def field_comment(self, msg, index):
        return self.comment(msg.file, msg.path + [2, index])

    def find_field(self, msg, dotted):
        """Resolves "a.b" through message fields; returns the list of FieldDescriptorProtos."""
        chain = []
        cur = msg
        for part in dotted.split("."):
            if cur is None or cur.kind != "message":
                raise GenError("%s: %s is not a message field path" % (msg.full, dotted))
            fld = next((f for f in cur.proto.field if f.name == part), None)
            if fld is None:
                raise GenError("%s has no field %r (in %r)" % (cur.full, part, dotted))
            chain.append(fld)
            cur = self.type(fld.type_name) if fld.type == FDP.TYPE_MESSAGE else None
        return chain


def clean_comment(text):
    """Strips the one leading space protoc leaves on each comment line and blank edges."""
    lines = [ln[1:] if ln.startswith(" ") else ln for ln in text.rstrip().split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(ln.rstrip() for ln in lines).strip("\n")


_VAR_RE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


def path_vars(pattern):
    """Field paths named by a URL template: "/a/{id}/b/{x.y=*}" -> ["id", "x.y"]."""
    return [m.group(1) for m in _VAR_RE.finditer(pattern)]


def openapi_path(pattern):
    """The OpenAPI form of a template: "{name=projects/*}" becomes "{name}"."""
    return _VAR_RE.sub(lambda m: "{%s}" % m.group(1), pattern)


def route_key(verb, pattern):
    """What makes two routes ambiguous: the verb and the template with variables erased."""
    return verb, _VAR_RE.sub("{}", pattern)


class Route:
    def __init__(self, method, rule):
        self.method = method
        self.verb = rule.verb
        self.pattern = rule.pattern
        self.body = rule.body
        self.response_body = rule.response_body
        self.vars = path_vars(rule.pattern)


SCALAR_PATH_TYPES = {
    FDP.TYPE_STRING, FDP.TYPE_INT32, FDP.TYPE_INT64, FDP.TYPE_UINT32, FDP.TYPE_UINT64,
    FDP.TYPE_SINT32, FDP.TYPE_SINT64, FDP.TYPE_FIXED32, FDP.TYPE_FIXED64, FDP.TYPE_SFIXED32,
    FDP.TYPE_SFIXED64, FDP.TYPE_BOOL, FDP.TYPE_ENUM,
}


def collect_routes(model):
    """Every HTTP binding of the files to generate, validated; in declaration order."""
    routes = []
    seen = {}
    for svc in model.services:
        for m in svc.methods:
            for rule in m.http:
                r = Route(m, rule)
                where = "%s: %s %s" % (m.path, r.verb, r.pattern)
                try:
                    _check_route(model, m, r)
                except GenError as e:
                    raise GenError("%s: %s" % (where, e)) from None
                key = route_key(r.verb, r.pattern)
                if key in seen:
                    raise GenError("%s: same route as %s" % (where, seen[key]))
                seen[key] = where
                routes.append(r)
    return routes


def _check_route(model, m, r):
    """Raises GenError (without the route's name, which the caller adds) for a bad rule."""
    if r.verb not in ("GET", "PUT", "POST", "DELETE", "PATCH"):
        raise GenError("unsupported HTTP method")
    if not r.pattern.startswith("/") or "?" in r.pattern:
        raise GenError("the path must start with '/' and have no query")
    if m.client_streaming:
        raise GenError("client-streaming methods cannot be REST routes")
    if len(set(r.vars)) != len(r.vars):
        raise GenError("a path variable repeats")
    for v in r.vars:
        last = model.find_field(m.input, v)[-1]
        if last.label == FDP.LABEL_REPEATED or last.type not in SCALAR_PATH_TYPES:
            raise GenError("path variable %s must be a singular scalar" % v)
    if r.body not in ("", "*") and len(model.find_field(m.input, r.body)) != 1:
        raise GenError("body must name a top-level field")
    if r.body and r.verb == "GET":
        raise GenError("GET cannot have a body")
    if r.response_body and len(model.find_field(m.output, r.response_body)) != 1:
        raise GenError("response_body must name a top-level field")
