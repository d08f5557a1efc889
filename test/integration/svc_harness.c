/* SPDX-License-Identifier: MIT */
/* The service integration tests' harness (svc_harness.h). */
#include "svc_harness.h"

#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/status.h"
#include "equity/v1/equity.pb-c.h"
#include "fixed_income/v1/fixed_income.pb-c.h"
#include "portfolio/v1/portfolio.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- processes ----------------------------------------------------------------------- */

/* Where logs and port files go (kept when a test fails). */
char g_tmp[256];

const svc_def EQUITY = { "equity", "FSR_EQUITY_BIN", "EQUITY", true };
const svc_def FIXED_INCOME = { "fixed_income", "FSR_FIXED_INCOME_BIN", "FI", true };
const svc_def PORTFOLIO = { "portfolio", "FSR_PORTFOLIO_BIN", "PORTFOLIO", true };

proc g_eq, g_fi, g_pf;

void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* protobuf-c's string fields are char *; the requests here never write through them. */
char *mut(const char *s)
{
    char *p;
    memcpy(&p, &s, sizeof(p));
    return p;
}

const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

/*
 * Starts |bin| with |argv| and the extra "K=V" variables |env| (NULL-terminated), stdout and
 * stderr appended to |log|.  Returns the pid, or -1.
 */
pid_t spawn(const char *bin, char *const argv[], char *const env[], const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    for (size_t i = 0; env[i] != NULL; i++)
        putenv(env[i]);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execv(bin, argv);
    _exit(127);
}

/*
 * Waits for |port_file| to hold a port (the service is listening) while |pid| lives.
 * Returns the port, or -1 if the process died or |timeout_ms| passed.
 */
int wait_port(pid_t pid, const char *port_file, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        FILE *f = fopen(port_file, "r");
        if (f != NULL) {
            int port = 0;
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0)
                return port;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        sleep_ms(50);
    }
    return -1;
}

/* The variables every service (and worker) of |d| needs to reach the test's deps. */
size_t deps_env(const svc_def *d, char **env, size_t n)
{
    const char *pg_host = env_or("TEST_PG_HOST", "127.0.0.1");
    const char *pg_port = env_or("TEST_PG_PORT", "5432");
    const char *r_host = env_or("TEST_REDIS_HOST", "127.0.0.1");
    const char *r_port = env_or("TEST_REDIS_PORT", "6379");
    char buf[512];
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                                                   \
        env[n++] = strdup(buf);                                                                    \
    } while (0)
    ADD("%s_DB_HOST=%s", d->prefix, pg_host);
    ADD("%s_DB_PORT=%s", d->prefix, pg_port);
    ADD("%s_DB_NAME=%s", d->prefix, d->name);
    ADD("%s_DB_USER=fsr", d->prefix);
    ADD("%s_REDIS_HOST=%s", d->prefix, r_host);
    ADD("%s_REDIS_PORT=%s", d->prefix, r_port);
    ADD("SHARED_REDIS_HOST=%s", r_host);
    ADD("SHARED_REDIS_PORT=%s", r_port);
    ADD("DB_WAIT_MS=30000");
    ADD("SHUTDOWN_GRACE_MS=3000");
    ADD("THREADS=2");
    ADD("LOG_LEVEL=info");
#undef ADD
    return n;
}

/* Starts the service |d| on a free port; |tag| distinguishes several instances' files. */
void svc_start(const svc_def *d, const char *tag, proc *p)
{
    memset(p, 0, sizeof(*p));
    p->pid = -1;
    p->port = -1;
    snprintf(p->log, sizeof(p->log), "%s/%s%s.log", g_tmp, d->name, tag);
    snprintf(p->port_file, sizeof(p->port_file), "%s/%s%s.port", g_tmp, d->name, tag);
    unlink(p->port_file);
    const char *bin = getenv(d->bin_env);
    if (bin == NULL)
        return;
    char *env[32];
    size_t n = deps_env(d, env, 0);
    char port_file_var[400];
    snprintf(port_file_var, sizeof(port_file_var), "PORT_FILE=%s", p->port_file);
    env[n++] = strdup("PORT=0");
    env[n++] = strdup(port_file_var);
    env[n] = NULL;
    char *argv[] = { mut(bin), NULL };
    p->pid = spawn(bin, argv, env, p->log);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    if (p->pid > 0)
        p->port = wait_port(p->pid, p->port_file, 60000);
}

/* Sends SIGTERM and returns the exit status (or -1 if it did not exit within 20 s). */
int proc_stop(proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < 20000; waited += 20) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0)
            break;
        sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = -1;
    return -1;
}

void start_equity(void)
{
    svc_start(&EQUITY, "", &g_eq);
}
void stop_equity(void)
{
    proc_stop(&g_eq);
}
void start_fixed_income(void)
{
    svc_start(&FIXED_INCOME, "", &g_fi);
}
void stop_fixed_income(void)
{
    proc_stop(&g_fi);
}
void start_portfolio(void)
{
    svc_start(&PORTFOLIO, "", &g_pf);
}
void stop_portfolio(void)
{
    proc_stop(&g_pf);
}

/* ---- HTTP/1.1 side door ---------------------------------------------------------------- */

/* GET |path| over plain HTTP/1.1; returns the status code, or -1. */
int http_get_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char buf[512];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    int status;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

/* Polls /health until it answers 200 (readiness can lag the listening socket). */
int wait_healthy(int port, int timeout_ms)
{
    int st = -1;
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        st = http_get_status(port, "/health");
        if (st == 200)
            break;
        sleep_ms(100);
    }
    return st;
}

/* ---- gRPC through lib/client.c ------------------------------------------------------ */

/* What a call returned, copied out of the callback. */

fsr_loop *g_loop;
fsr_channel *g_ch;
int g_ch_port;

fsr_channel *channel_to(int port)
{
    if (g_ch != NULL && g_ch_port == port)
        return g_ch;
    if (g_loop == NULL)
        ck_assert_int_eq(fsr_loop_new(&g_loop), 0);
    if (g_ch != NULL)
        fsr_channel_free(g_ch);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    ck_assert_int_eq(fsr_channel_new(g_loop, target, NULL, &g_ch), 0);
    g_ch_port = port;
    return g_ch;
}

/* Decodes grpc-status-details-bin: the first BadRequest field violation's field. */
void details_field(const void *bytes, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, bytes);
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_details && out[0] == '\0'; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        if (strcmp(any->type_url, "type.googleapis.com/google.rpc.BadRequest") != 0)
            continue;
        Google__Rpc__BadRequest *br =
            google__rpc__bad_request__unpack(NULL, any->value.len, any->value.data);
        if (br != NULL && br->n_field_violations > 0)
            snprintf(out, cap, "%s", br->field_violations[0]->field);
        if (br != NULL)
            google__rpc__bad_request__free_unpacked(br, NULL);
    }
    google__rpc__status__free_unpacked(st, NULL);
}

void on_rpc_done(const fsr_result *res, void *arg)
{
    rpc *r = arg;
    r->code = res->status.code;
    snprintf(r->message, sizeof(r->message), "%s",
             res->status.message != NULL ? res->status.message : "");
    if (res->status_details != NULL)
        details_field(res->status_details, res->status_details_len, r->field, sizeof(r->field));
    if (res->response != NULL) {
        size_t n = protobuf_c_message_get_packed_size(res->response);
        uint8_t *buf = malloc(n + 1);
        protobuf_c_message_pack(res->response, buf);
        r->resp = protobuf_c_message_unpack(res->response->descriptor, NULL, n, buf);
        free(buf);
    }
    r->done = true;
}

/*
 * A unary call to |path| on |port|; |client_id| becomes x-client-id metadata if set, with
 * x-client-role "client" (as the gateway sends them after authenticating a client's key).
 */
rpc call(int port, const char *path, const void *req, const ProtobufCMessageDescriptor *out,
         const char *client_id)
{
    rpc r;
    memset(&r, 0, sizeof(r));
    r.code = FSR_UNKNOWN;
    fsr_md md[2] = { { "x-client-id", client_id, client_id != NULL ? strlen(client_id) : 0 },
                     { "x-client-role", "client", 6 } };
    fsr_call_opts opts = { .timeout_ms = 15000,
                           .metadata = client_id != NULL ? md : NULL,
                           .n_metadata = client_id != NULL ? 2 : 0 };
    fsr_channel *ch = channel_to(port);
    int rv = fsr_channel_unary(ch, path, req, out, &opts, on_rpc_done, &r);
    ck_assert_msg(rv == 0, "fsr_channel_unary: %d", rv);
    while (!r.done)
        ck_assert_int_ge(event_base_loop(fsr_loop_base(g_loop), EVLOOP_ONCE), 0);
    return r;
}

void rpc_dispose(rpc *r)
{
    if (r->resp != NULL)
        protobuf_c_message_free_unpacked(r->resp, NULL);
    r->resp = NULL;
}

/* Asserts INVALID_ARGUMENT naming |field|, in the details and in the message. */
void expect_invalid(rpc *r, const char *field, const char *what)
{
    ck_assert_msg(r->code == FSR_INVALID_ARGUMENT, "%s: code %s (%s)", what, fsr_code_name(r->code),
                  r->message);
    ck_assert_msg(strcmp(r->field, field) == 0, "%s: field '%s', want '%s' (%s)", what, r->field,
                  field, r->message);
    ck_assert_msg(strncmp(r->message, field, strlen(field)) == 0 &&
                      r->message[strlen(field)] == ':',
                  "%s: message '%s' does not start with '%s:'", what, r->message, field);
    ck_assert_ptr_null(r->resp);
}

void expect_code(rpc *r, fsr_code code, const char *what)
{
    ck_assert_msg(r->code == code, "%s: code %s, want %s (%s)", what, fsr_code_name(r->code),
                  fsr_code_name(code), r->message);
}

/* Byte equality of two messages' encodings (protobuf-c packs fields in a fixed order). */
bool same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a), nb = protobuf_c_message_get_packed_size(b);
    if (na != nb)
        return false;
    uint8_t *ba = malloc(na + 1), *bb = malloc(nb + 1);
    protobuf_c_message_pack(a, ba);
    protobuf_c_message_pack(b, bb);
    bool same = memcmp(ba, bb, na) == 0;
    free(ba);
    free(bb);
    return same;
}

bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : strchr("0123456789abcdef", s[i]) == NULL)
            return false;
    }
    return true;
}

/* ---- SQL, to look behind the API ------------------------------------------------------ */

/* Runs |sql| (one value) in database |db|; returns the value as a long. */
long db_long(const char *db, const char *sql)
{
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%s dbname=%s user=fsr",
             env_or("TEST_PG_HOST", "127.0.0.1"), env_or("TEST_PG_PORT", "5432"), db);
    PGconn *c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", db, PQerrorMessage(c));
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return v;
}

/* A UUID unique to this test process (|n| tells several apart). */
const char *pid_uuid(char buf[37], unsigned n)
{
    snprintf(buf, 37, "%08x-%04x-4000-8000-%012x", (unsigned)getpid(), n & 0xffffu, n);
    return buf;
}

/* ================================ equity ================================================== */
