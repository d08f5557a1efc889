/* SPDX-License-Identifier: MIT */
/*
 * Route matching: the generated google.api.http patterns are split once, at startup, into
 * literal and {variable} segments, grouped by segment count.  A request path is split the
 * same way and compared against the routes of its segment count only, which for ~60
 * routes is a handful of memcmp()s: no regex, no allocation except decoded variables.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"

typedef struct gw_seg {
    const char *text; /* literal text, or the variable's field path */
    size_t len;
    bool var;
} gw_seg;

typedef struct gw_croute {
    const fsr_route *rt;
    gw_seg segs[GW_MAX_SEGS];
    size_t n_segs;
    unsigned method;      /* GW_M_* */
    uint32_t specificity; /* bit (n_segs-1-i) set when segment i is a literal */
    int upstream;
    char *buf; /* owns the variable names */
} gw_croute;

struct gw_router {
    gw_croute *routes;
    size_t n;
    /* by_len[k]: indices of the routes with k segments, in table order. */
    size_t *by_len[GW_MAX_SEGS + 1];
    size_t n_by_len[GW_MAX_SEGS + 1];
};

/* ---- upstreams and methods ------------------------------------------------------------ */

int gw_upstream_of(const char *service)
{
    static const struct {
        const char *prefix;
        int up;
    } map[] = {
        { "equity.v1.", GW_UP_EQUITY },
        { "fixed_income.v1.", GW_UP_FI },
        { "portfolio.v1.", GW_UP_PORTFOLIO },
        { "jobs.v1.", GW_UP_PORTFOLIO },
    };
    if (service == NULL)
        return -1;
    for (size_t i = 0; i < FSR_ARRAY_SIZE(map); i++)
        if (strncmp(service, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].up;
    return -1;
}

const char *gw_upstream_key(int up)
{
    static const char *const keys[GW_UP_COUNT] = { "equity", "fixed_income", "portfolio" };
    return up >= 0 && up < GW_UP_COUNT ? keys[up] : "unknown";
}

const char *gw_upstream_title(int up)
{
    static const char *const titles[GW_UP_COUNT] = { "equity service", "fixed income service",
                                                     "portfolio service" };
    return up >= 0 && up < GW_UP_COUNT ? titles[up] : "upstream service";
}

static const char *const method_names[GW_N_METHODS] = { "GET",   "HEAD",   "POST",    "PUT",
                                                        "PATCH", "DELETE", "OPTIONS", "OTHER" };

unsigned gw_method_bit(const char *m)
{
    for (int i = 0; i < GW_N_METHODS - 1; i++)
        if (strcmp(m, method_names[i]) == 0)
            return 1u << i;
    return GW_M_OTHER;
}

int gw_method_index(unsigned bit)
{
    for (int i = 0; i < GW_N_METHODS; i++)
        if (bit == 1u << i)
            return i;
    return GW_N_METHODS - 1;
}

const char *gw_method_name(int index)
{
    return index >= 0 && index < GW_N_METHODS ? method_names[index] : "OTHER";
}

size_t gw_allow_format(unsigned allow, char *buf, size_t cap)
{
    if (allow & GW_M_GET)
        allow |= GW_M_HEAD;
    allow |= GW_M_OPTIONS;
    size_t o = 0;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    for (int i = 0; i < GW_N_METHODS - 1; i++) {
        if (!(allow & (1u << i)))
            continue;
        const char *sep = o > 0 ? ", " : "";
        size_t need = strlen(sep) + strlen(method_names[i]);
        if (o + need + 1 > cap)
            break;
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", sep, method_names[i]);
    }
    return o;
}

/* ---- compiling ----------------------------------------------------------------------- */

static bool var_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Splits |cr->rt->pattern| into |cr->segs|.  Returns 0, or -1 (logged) for a bad pattern. */
static int compile_pattern(gw_croute *cr)
{
    const char *p = cr->rt->pattern;
    if (p == NULL || p[0] != '/') {
        FSR_ERROR("route %s: pattern must start with '/'", cr->rt->path);
        return -1;
    }
    cr->buf = fsr_xstrdup(p);
    char *s = cr->buf + 1;
    if (*s == '\0')
        return 0; /* "/": zero segments */
    for (;;) {
        char *slash = strchr(s, '/');
        size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
        if (cr->n_segs == GW_MAX_SEGS) {
            FSR_ERROR("route %s: more than %d segments", cr->rt->pattern, GW_MAX_SEGS);
            return -1;
        }
        gw_seg *g = &cr->segs[cr->n_segs];
        if (len == 0) {
            FSR_ERROR("route %s: empty segment", cr->rt->pattern);
            return -1;
        }
        if (s[0] == '{') {
            if (s[len - 1] != '}' || !var_name_ok(s + 1, len - 2)) {
                FSR_ERROR("route %s: unsupported variable syntax", cr->rt->pattern);
                return -1;
            }
            s[len - 1] = '\0';
            g->text = s + 1;
            g->len = len - 2;
            g->var = true;
        } else {
            if (memchr(s, '{', len) != NULL || memchr(s, '}', len) != NULL ||
                memchr(s, ':', len) != NULL || memchr(s, '*', len) != NULL) {
                FSR_ERROR("route %s: unsupported segment syntax", cr->rt->pattern);
                return -1;
            }
            g->text = s;
            g->len = len;
            g->var = false;
        }
        cr->n_segs++;
        if (slash == NULL)
            break;
        s = slash + 1;
    }
    size_t n_vars = 0;
    for (size_t i = 0; i < cr->n_segs; i++) {
        if (cr->segs[i].var)
            n_vars++;
        else
            cr->specificity |= 1u << (cr->n_segs - 1 - i);
    }
    if (n_vars > GW_MAX_VARS) {
        FSR_ERROR("route %s: more than %d variables", cr->rt->pattern, GW_MAX_VARS);
        return -1;
    }
    return 0;
}

int gw_router_new(const fsr_route *routes, size_t n, gw_router **out)
{
    gw_router *r = fsr_xcalloc(1, sizeof(*r));
    r->routes = fsr_xcalloc(n > 0 ? n : 1, sizeof(*r->routes));
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        gw_croute *cr = &r->routes[i];
        cr->rt = &routes[i];
        if (compile_pattern(cr) != 0)
            goto fail;
        cr->method = gw_method_bit(cr->rt->http_method);
        if (cr->method == GW_M_OTHER || cr->method == GW_M_HEAD || cr->method == GW_M_OPTIONS) {
            FSR_ERROR("route %s: unsupported HTTP method %s", cr->rt->path, cr->rt->http_method);
            goto fail;
        }
        cr->upstream = gw_upstream_of(cr->rt->service);
        if (cr->upstream < 0) {
            FSR_ERROR("route %s: no upstream serves %s", cr->rt->path, cr->rt->service);
            goto fail;
        }
        r->n_by_len[cr->n_segs]++;
    }
    for (size_t k = 0; k <= GW_MAX_SEGS; k++) {
        if (r->n_by_len[k] > 0)
            r->by_len[k] = fsr_xcalloc(r->n_by_len[k], sizeof(size_t));
        r->n_by_len[k] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = r->routes[i].n_segs;
        r->by_len[k][r->n_by_len[k]++] = i;
    }
    *out = r;
    return 0;
fail:
    gw_router_free(r);
    return FSR_E_CONFIG;
}

void gw_router_free(gw_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->routes[i].buf);
    for (size_t k = 0; k <= GW_MAX_SEGS; k++)
        free(r->by_len[k]);
    free(r->routes);
    free(r);
}

size_t gw_router_size(const gw_router *r)
{
    return r->n;
}

const fsr_route *gw_router_route(const gw_router *r, size_t i)
{
    return r->routes[i].rt;
}

int gw_router_upstream(const gw_router *r, size_t i)
{
    return r->routes[i].upstream;
}

/* ---- matching ------------------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long gw_percent_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') {
            out[o++] = in[i];
            continue;
        }
        if (i + 2 >= len)
            return -1;
        int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -1;
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[o] = '\0';
    return (long)o;
}

int gw_router_match(const gw_router *r, const char *method, const char *path, fsr_arena *a,
                    gw_match *m)
{
    /* Split the path: segment i is path[off[i] .. off[i]+len[i]). */
    const char *seg[GW_MAX_SEGS];
    size_t len[GW_MAX_SEGS];
    size_t n = 0;
    if (path[0] != '/')
        return GW_MATCH_NOT_FOUND;
    size_t plen = strlen(path);
    if (plen > 1 && path[plen - 1] == '/')
        plen--; /* one trailing slash is ignored */
    const char *p = path + 1, *end = path + plen;
    if (p < end) {
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            const char *se = slash != NULL ? slash : end;
            if (n == GW_MAX_SEGS || se == p)
                return GW_MATCH_NOT_FOUND; /* too deep, or an empty segment ("//") */
            seg[n] = p;
            len[n] = (size_t)(se - p);
            n++;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }

    unsigned want = gw_method_bit(method);
    if (want == GW_M_HEAD)
        want = GW_M_GET;
    unsigned allow = 0;
    const gw_croute *best = NULL;
    size_t best_i = 0;
    for (size_t j = 0; j < r->n_by_len[n]; j++) {
        size_t i = r->by_len[n][j];
        const gw_croute *cr = &r->routes[i];
        size_t k = 0;
        for (; k < n; k++) {
            const gw_seg *g = &cr->segs[k];
            if (!g->var && (g->len != len[k] || memcmp(g->text, seg[k], len[k]) != 0))
                break;
        }
        if (k < n)
            continue;
        allow |= cr->method;
        if (cr->method != want)
            continue;
        /* Most specific wins; on a tie (a duplicate rule) the first one. */
        if (best == NULL || cr->specificity > best->specificity) {
            best = cr;
            best_i = i;
        }
    }
    m->allow = allow;
    if (best == NULL)
        return allow != 0 ? GW_MATCH_BAD_METHOD : GW_MATCH_NOT_FOUND;

    m->route = best_i;
    m->n_vars = 0;
    for (size_t k = 0; k < n; k++) {
        const gw_seg *g = &best->segs[k];
        if (!g->var)
            continue;
        char *v;
        if (memchr(seg[k], '%', len[k]) == NULL) {
            v = fsr_arena_strndup(a, seg[k], len[k]);
        } else {
            v = fsr_arena_alloc(a, len[k] + 1);
            if (gw_percent_decode(seg[k], len[k], v) < 0)
                return GW_MATCH_BAD_ESCAPE;
        }
        m->vars[m->n_vars].name = g->text;
        m->vars[m->n_vars].value = v;
        m->n_vars++;
    }
    return 0;
}
