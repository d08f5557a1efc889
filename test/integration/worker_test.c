/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of svc_worker's job engine (fsr-worker) and of lib/jobs.c, against the
 * real PostgreSQL of with_deps.sh and Redis servers this test starts itself (so that it can
 * kill and restart them).  Every test gets its own database (jobs table from
 * svc_equity/sql/002_jobs.sql, plus test_job_effects for the test.effect job type) and its
 * own Redis, so the tests are independent.  Jobs are enqueued through fsr_job_enqueue(),
 * the API the services use.
 *
 * The "Done means" of the worker issue, one test each:
 *   - SIGKILL mid-job: the job is reclaimed and completed once; its effect row exists once;
 *   - an always-failing job ends DEAD, in the dead-letter stream, after its retry limit;
 *   - two replicas process 10,000 jobs: each completed exactly once (10,000 effect rows,
 *     no duplicates), both replicas took part;
 *   - a Redis restart (AOF, killed with SIGKILL mid-processing) loses no acknowledged state:
 *     finished jobs stay SUCCEEDED and are not run again, the rest complete exactly once.
 * Plus: retries that roll back their effects, a Redis flush recovered by the requeue sweep,
 * SIGTERM finishing the running job, GetJob routed across services, job ids.
 *
 * Environment: TEST_PG_HOST, TEST_PG_PORT (with_deps.sh --pg), FSR_WORKER_BIN,
 * FSR_EQUITY_BIN, FSR_PORTFOLIO_BIN (meson); redis-server on PATH.
 */
#include "fsr/jobs.h"
#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/pg.h"
#include "fsr/redis.h"
#include "fsr/status.h"

#include "jobs/v1/jobs.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "bondmath.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_tmp[256];

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- child processes ------------------------------------------------------------------ */

/*
 * Every process a test starts dies with the test process (PR_SET_PDEATHSIG), and is killed
 * by an atexit handler when an assertion ends the test early, so nothing outlives a test.
 */
#define MAX_KIDS 16
static pid_t g_kids[MAX_KIDS];

static void kill_kids(void)
{
    for (int i = 0; i < MAX_KIDS; i++) {
        if (g_kids[i] > 0) {
            kill(g_kids[i], SIGKILL);
            waitpid(g_kids[i], NULL, 0);
            g_kids[i] = 0;
        }
    }
}

static void kid_add(pid_t pid)
{
    static bool registered;
    if (!registered) {
        atexit(kill_kids);
        registered = true;
    }
    for (int i = 0; i < MAX_KIDS; i++) {
        if (g_kids[i] <= 0) {
            g_kids[i] = pid;
            return;
        }
    }
}

static void kid_forget(pid_t pid)
{
    for (int i = 0; i < MAX_KIDS; i++) {
        if (g_kids[i] == pid)
            g_kids[i] = 0;
    }
}

/*
 * Starts |argv| with the extra "K=V" variables |env| (NULL-terminated), output appended to
 * |log|, as the unprivileged |user| when running as root and |user| is not NULL.
 */
static pid_t spawn(char *const argv[], char *const env[], const char *log, const char *user)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            kid_add(pid);
        return pid;
    }
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        putenv(env[i]);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (user != NULL && getuid() == 0) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(126);
    }
    /* After setuid(), which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    execvp(argv[0], argv);
    _exit(127);
}

/* SIGTERM (or |sig|), then the exit status (128 + signal), or -1 after |timeout_ms|. */
static int stop_pid(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            kid_forget(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    kid_forget(pid);
    return -1;
}

static int wait_port_file(pid_t pid, const char *path, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            int port = 0;
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0)
                return port;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            kid_forget(pid);
            return -1;
        }
        sleep_ms(20);
    }
    return -1;
}

/* ---- Redis ---------------------------------------------------------------------------- */

typedef struct redis_srv {
    pid_t pid;
    int port;
    char dir[300];
    bool aof;
} redis_srv;

static redisContext *rconn(const redis_srv *r)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    ck_assert_msg(c != NULL && c->err == 0, "cannot connect to redis on %d", r->port);
    return c;
}

static bool redis_pong(int port)
{
    struct timeval tv = { 0, 200000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return false;
    }
    redisReply *rep = redisCommand(c, "PING");
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    freeReplyObject(rep);
    redisFree(c);
    return ok;
}

/* (Re)starts the server of |r| on its port and directory. */
static void redis_run(redis_srv *r)
{
    char port[16], log[400];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    char *argv[] = { "redis-server",
                     "--port",
                     port,
                     "--bind",
                     "127.0.0.1",
                     "--dir",
                     r->dir,
                     "--save",
                     "",
                     "--appendonly",
                     r->aof ? "yes" : "no",
                     "--appendfsync",
                     "always",
                     "--daemonize",
                     "no",
                     NULL };
    /* Redis should not run as root either: as `redis` (Debian's package user) if present. */
    const char *user = getpwnam("redis") != NULL ? "redis" : "postgres";
    r->pid = spawn(argv, NULL, log, user);
    ck_assert_int_gt(r->pid, 0);
    for (int waited = 0; !redis_pong(r->port); waited += 20) {
        ck_assert_msg(waited < 20000, "redis did not start on %d (see %s)", r->port, log);
        ck_assert_msg(waitpid(r->pid, NULL, WNOHANG) == 0, "redis exited (see %s)", log);
        sleep_ms(20);
    }
}

static void redis_start(redis_srv *r, const char *tag, bool aof)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "%s/redis-%s-%d", g_tmp, tag, (int)getpid());
    ck_assert_int_eq(mkdir(r->dir, 0755), 0);
    if (getuid() == 0) {
        struct passwd *pw = getpwnam(getpwnam("redis") != NULL ? "redis" : "postgres");
        ck_assert_ptr_nonnull(pw);
        ck_assert_int_eq(chown(r->dir, pw->pw_uid, pw->pw_gid), 0);
    }
    r->aof = aof;
    r->port = free_port();
    ck_assert_int_gt(r->port, 0);
    redis_run(r);
}

static long long redis_int(const redis_srv *r, const char *fmt, ...)
{
    redisContext *c = rconn(r);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(rep);
    long long v = -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
             rep->element[0]->type == REDIS_REPLY_INTEGER) /* XPENDING summary */
        v = rep->element[0]->integer;
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

/* ---- PostgreSQL ----------------------------------------------------------------------- */

typedef struct db {
    char name[64];
    char conninfo[512];
} db;

static PGconn *pg_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo, PQerrorMessage(c));
    return c;
}

static void pg_run(const char *conninfo, const char *sql)
{
    PGconn *c = pg_connect(conninfo);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The first column of the first row of |sql| (printf-formatted) as text, copied to |out|. */
static void pg_text(const db *d, char *out, size_t cap, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGconn *c = pg_connect(d->conninfo);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    ck_assert_msg(PQntuples(r) >= 1, "%s: no row", sql);
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

static long long pg_int(const db *d, const char *fmt, ...)
{
    char sql[2048], out[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    pg_text(d, out, sizeof(out), "%s", sql);
    return atoll(out);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void admin_conninfo(char *out, size_t cap, const char *dbname)
{
    snprintf(out, cap, "host=%s port=%s dbname=%s user=postgres", env_or("TEST_PG_HOST", "/tmp"),
             env_or("TEST_PG_PORT", "5432"), dbname);
}

/*
 * A fresh database owned by fsr; |schema|: with the jobs table (the services' migration
 * file, exactly) and test.effect's table.
 */
static void db_create(db *d, const char *tag, bool schema)
{
    static int seq;
    snprintf(d->name, sizeof(d->name), "wt_%s_%d_%d", tag, (int)getpid(), seq++);
    char admin[512], sql[256];
    admin_conninfo(admin, sizeof(admin), "postgres");
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER fsr", d->name);
    pg_run(admin, sql);
    snprintf(d->conninfo, sizeof(d->conninfo), "host=%s port=%s dbname=%s user=fsr",
             env_or("TEST_PG_HOST", "/tmp"), env_or("TEST_PG_PORT", "5432"), d->name);
    if (schema) {
        char *jobs = read_file(WT_JOBS_SQL);
        pg_run(d->conninfo, jobs);
        free(jobs);
        pg_run(d->conninfo, "CREATE TABLE test_job_effects (job_id uuid NOT NULL,"
                            " attempt integer NOT NULL, worker text NOT NULL,"
                            " at timestamptz NOT NULL DEFAULT now())");
    }
}

/* ---- processes under test ------------------------------------------------------------- */

typedef struct proc {
    pid_t pid;
    int port;
    char log[400];
} proc;

/*
 * Starts fsr-worker --queue |queue| (its variables' prefix |prefix|: "EQUITY", "FI",
 * "PORTFOLIO") on |d| and |r| with test-friendly settings, overridden or extended by the
 * "K=V" strings in |extra| (NULL-terminated, may be NULL).
 */
static void worker_start_queue(proc *p, const char *tag, const char *queue, const char *prefix,
                               const db *d, const redis_srv *r, const char *const *extra)
{
    memset(p, 0, sizeof(*p));
    char port_file[400];
    snprintf(p->log, sizeof(p->log), "%s/worker-%s-%d.log", g_tmp, tag, (int)getpid());
    snprintf(port_file, sizeof(port_file), "%s/worker-%s-%d.port", g_tmp, tag, (int)getpid());
    unlink(port_file);
    char *env[48];
    size_t n = 0;
    char buf[600];
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                                                   \
        env[n++] = strdup(buf);                                                                    \
    } while (0)
    ADD("%s_DB_HOST=%s", prefix, env_or("TEST_PG_HOST", "/tmp"));
    ADD("%s_DB_PORT=%s", prefix, env_or("TEST_PG_PORT", "5432"));
    ADD("%s_DB_NAME=%s", prefix, d->name);
    ADD("%s_DB_USER=fsr", prefix);
    ADD("%s_REDIS_HOST=127.0.0.1", prefix);
    ADD("%s_REDIS_PORT=%d", prefix, r->port);
    ADD("WORKER_PORT=0");
    ADD("PORT_FILE=%s", port_file);
    ADD("WORKER_TEST_JOBS=1");
    ADD("WORKER_CLAIM_INTERVAL_MS=200");
    ADD("WORKER_BACKOFF_BASE_MS=20");
    ADD("WORKER_BACKOFF_MAX_MS=200");
    ADD("WORKER_BLOCK_MS=500");
    ADD("WORKER_RETRY_POLL_MS=50");
    ADD("WORKER_STATS_INTERVAL_MS=100");
    ADD("DB_WAIT_MS=30000");
    ADD("LOG_LEVEL=info");
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        ADD("%s", extra[i]);
#undef ADD
    env[n] = NULL;
    char qname[32];
    snprintf(qname, sizeof(qname), "%s", queue);
    char *argv[] = { getenv("FSR_WORKER_BIN"), "--queue", qname, NULL };
    ck_assert_ptr_nonnull(argv[0]);
    p->pid = spawn(argv, env, p->log, NULL);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    ck_assert_int_gt(p->pid, 0);
    p->port = wait_port_file(p->pid, port_file, 30000);
    ck_assert_msg(p->port > 0, "worker did not start; see %s", p->log);
}

/* fsr-worker --queue equity: what most tests run. */
static void worker_start(proc *p, const char *tag, const db *d, const redis_srv *r,
                         const char *const *extra)
{
    worker_start_queue(p, tag, "equity", "EQUITY", d, r, extra);
}

/* GET |path| on |port|: the body in a malloc()ed string (NULL on failure). */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + got, cap - 1 - got)) > 0) {
        got += (size_t)r;
        if (got + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[got] = '\0';
    close(fd);
    return buf;
}

/* The value of the metric line starting with |series| ("name{labels}"), or -1. */
static double metric(int port, const char *series)
{
    char *text = http_get(port, "/metrics");
    ck_assert_ptr_nonnull(text);
    double v = -1;
    size_t n = strlen(series);
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
        line = next != NULL ? next + 1 : NULL;
    }
    free(text);
    return v;
}

/* ---- enqueueing through fsr_job_enqueue() --------------------------------------------- */

typedef struct enq {
    fsr_loop *loop;
    fsr_pg_pool *pg;
    fsr_redis *redis;
    fsr_job_queue q;
    const fsr_job_spec *spec;
    int n, next, outstanding, done, failed, unpublished;
    char (*ids)[FSR_JOB_ID_LEN + 1];
} enq;

static void enq_pump(enq *e);

static void on_enqueued(const fsr_job_info *info, int status, void *arg)
{
    enq *e = arg;
    e->outstanding--;
    if (status == 0) {
        memcpy(e->ids[e->done++], info->id, FSR_JOB_ID_LEN + 1);
        e->unpublished += !info->published;
    } else {
        e->failed++;
    }
    enq_pump(e);
}

static void enq_pump(enq *e)
{
    while (e->outstanding < 256 && e->next < e->n) {
        int rv = fsr_job_enqueue(e->pg, e->redis, e->q, e->spec, on_enqueued, e);
        ck_assert_int_eq(rv, 0);
        e->outstanding++;
        e->next++;
    }
    if (e->outstanding == 0 && e->next == e->n)
        fsr_loop_stop(e->loop);
}

static void on_enq_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fsr_loop_stop(arg);
}

/*
 * Enqueues |n| jobs of |type| with |payload| (may be NULL) into queue |q| of |d| / |r|
 * and returns their ids (malloc()ed array).  Asserts that every job was created and
 * published.
 */
static char (*enqueue_q(const db *d, const redis_srv *r, fsr_job_queue q, const char *type,
                        const char *payload, int n))[FSR_JOB_ID_LEN + 1]
{
    enq e = { .n = n, .q = q };
    e.ids = calloc((size_t)n, sizeof(*e.ids));
    ck_assert_int_eq(fsr_loop_new(&e.loop), 0);
    fsr_pg_config pc = { .conninfo = d->conninfo, .size = 8, .queue_max = 1024 };
    ck_assert_int_eq(fsr_pg_pool_new(e.loop, &pc, &e.pg), 0);
    ck_assert_int_eq(fsr_redis_new(e.loop, "127.0.0.1", r->port, NULL, &e.redis), 0);
    fsr_job_spec spec = { .type = type,
                          .payload = payload,
                          .payload_len = payload != NULL ? strlen(payload) : 0,
                          .request_id = "worker-test" };
    e.spec = &spec;
    struct event *tmo = evtimer_new(fsr_loop_base(e.loop), on_enq_timeout, e.loop);
    struct timeval tv = { 120, 0 };
    evtimer_add(tmo, &tv);
    enq_pump(&e);
    fsr_loop_run(e.loop);
    event_free(tmo);
    fsr_redis_free(e.redis);
    fsr_pg_pool_free(e.pg);
    fsr_loop_free(e.loop);
    ck_assert_int_eq(e.failed, 0);
    ck_assert_int_eq(e.done, n);
    ck_assert_int_eq(e.unpublished, 0);
    return e.ids;
}

/* enqueue_q() into queue equity. */
static char (*enqueue(const db *d, const redis_srv *r, const char *type, const char *payload,
                      int n))[FSR_JOB_ID_LEN + 1]
{
    return enqueue_q(d, r, FSR_JOB_QUEUE_EQUITY, type, payload, n);
}

/* Polls until |sql| (a count) returns |want| or |timeout_ms| passes; returns the last value. */
static long long wait_count(const db *d, long long want, int timeout_ms, const char *sql)
{
    long long v = -1;
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; sleep_ms(50)) {
        v = pg_int(d, "%s", sql);
        if (v == want)
            break;
    }
    return v;
}

static void job_state(const db *d, const char *id, char *out, size_t cap)
{
    pg_text(d, out, cap, "SELECT state FROM jobs WHERE id = '%s'", id);
}

/* ==================================== tests ========================================== */

/* Job ids name their queue and stay valid UUIDs; envelopes are bounded. */
START_TEST(test_worker_job_ids)
{
    for (int q = FSR_JOB_QUEUE_EQUITY; q <= FSR_JOB_QUEUE_PORTFOLIO; q++) {
        char id[FSR_JOB_ID_LEN + 1], id2[FSR_JOB_ID_LEN + 1];
        ck_assert_int_eq(fsr_job_id_new((fsr_job_queue)q, id), 0);
        ck_assert_int_eq(strlen(id), 36);
        ck_assert_int_eq(id[14], '8'); /* version 8 */
        ck_assert(strchr("89ab", id[19]) != NULL);
        fsr_job_queue owner = 0;
        ck_assert_int_eq(fsr_job_id_queue(id, &owner), 0);
        ck_assert_int_eq(owner, q);
        uint8_t b[16];
        char back[FSR_JOB_ID_LEN + 1];
        ck_assert_int_eq(fsr_job_id_to_bytes(id, b), 0);
        fsr_job_id_from_bytes(b, back);
        ck_assert_str_eq(back, id);
        sleep_ms(2);
        ck_assert_int_eq(fsr_job_id_new((fsr_job_queue)q, id2), 0);
        ck_assert_int_lt(strcmp(id, id2), 0); /* time-ordered */
    }
    fsr_job_queue owner = FSR_JOB_QUEUE_EQUITY;
    ck_assert_int_eq(fsr_job_id_queue("3f2504e0-4f89-41d3-9a0c-0305e82c3301", &owner), -EINVAL);
    ck_assert_int_eq(fsr_job_id_queue("0190f3a2-7c41-8447-a3b2-9f0c51d2e4a7", &owner), -EINVAL);
    ck_assert_int_eq(fsr_job_id_queue("not-a-uuid", &owner), -EINVAL);
    ck_assert_int_eq(fsr_job_id_queue("0190f3a2-7c41-8247-a3b2-9f0c51d2e4a7", &owner), 0);
    ck_assert_int_eq(owner, FSR_JOB_QUEUE_FIXED_INCOME);

    fsr_job_draft d;
    char big[FSR_JOB_PAYLOAD_MAX + 1];
    memset(big, 'x', sizeof(big));
    fsr_job_spec ok = { .type = "noop", .payload = big, .payload_len = FSR_JOB_PAYLOAD_MAX };
    ck_assert_int_eq(fsr_job_prepare(FSR_JOB_QUEUE_EQUITY, &ok, &d), 0);
    ck_assert_uint_le(d.envelope_len, FSR_JOB_ENVELOPE_MAX);
    fsr_job_spec too_big = ok;
    too_big.payload_len = FSR_JOB_PAYLOAD_MAX + 1;
    ck_assert_int_eq(fsr_job_prepare(FSR_JOB_QUEUE_EQUITY, &too_big, &d), -EINVAL);
    fsr_job_spec bad_type = { .type = "Bad Type" };
    ck_assert_int_eq(fsr_job_prepare(FSR_JOB_QUEUE_EQUITY, &bad_type, &d), -EINVAL);
}
END_TEST

/*
 * SIGKILL in the middle of a job: the attempt's transaction (effect row included) dies with
 * the worker; after the visibility timeout another worker reclaims the entry, runs the job
 * again and completes it once.
 */
START_TEST(test_worker_sigkill_mid_job_reclaimed_once)
{
    db d;
    redis_srv r;
    db_create(&d, "kill", true);
    redis_start(&r, "kill", false);
    /* V = 6 s: the lease (and the handler timeout) is 3 s, the job sleeps 2.5 s. */
    const char *cfg[] = { "WORKER_VISIBILITY_TIMEOUT_MS=6000", NULL };
    proc a, b;
    worker_start(&a, "kill-a", &d, &r, cfg);
    char(*ids)[FSR_JOB_ID_LEN + 1] =
        enqueue(&d, &r, "test.effect", "sleep_ms=2500;sleep_until=2", 1);
    const char *id = ids[0];

    /* Wait for the attempt to be running (inside its transaction), then kill the worker. */
    char state[32] = "";
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(10)) {
        job_state(&d, id, state, sizeof(state));
        if (strcmp(state, "RUNNING") == 0)
            break;
    }
    ck_assert_str_eq(state, "RUNNING");
    sleep_ms(300); /* well inside the 2.5 s sleep, after the effect's INSERT */
    ck_assert_int_eq(stop_pid(a.pid, SIGKILL, 5000), 128 + SIGKILL);

    /* Nothing committed; the entry is pending on the dead consumer. */
    job_state(&d, id, state, sizeof(state));
    ck_assert_str_eq(state, "RUNNING");
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 0);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 1);

    worker_start(&b, "kill-b", &d, &r, cfg);
    long long done =
        wait_count(&d, 1, 30000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    ck_assert_msg(done == 1, "job not completed after the kill; see %s", b.log);
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", id), 2);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects WHERE job_id = '%s'", id),
                     1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 1);
    ck_assert_int_eq(pg_int(&d, "SELECT attempt FROM test_job_effects"), 2);
    /* Settled: acknowledged and deleted from the stream. */
    for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        if (redis_int(&r, "XPENDING jobs:equity workers") == 0)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    ck_assert_double_ge(metric(b.port, "worker_jobs_reclaimed_total{queue=\"equity\"}"), 1);
    ck_assert_int_eq(stop_pid(b.pid, SIGTERM, 15000), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * A worker frozen (SIGSTOP) inside a job's transaction past the visibility timeout: another
 * worker reclaims the entry but must not run the job a second time while the first attempt
 * holds it (its row is locked), and is not held up by it either (other jobs flow).  When
 * the frozen worker resumes, the job completes with its effect applied once.
 */
START_TEST(test_worker_stalled_worker_not_run_twice)
{
    db d;
    redis_srv r;
    db_create(&d, "stall", true);
    redis_start(&r, "stall", false);
    const char *cfg[] = { "WORKER_VISIBILITY_TIMEOUT_MS=3000", NULL };
    proc a, b;
    worker_start(&a, "stall-a", &d, &r, cfg);
    char(*ids)[FSR_JOB_ID_LEN + 1] =
        enqueue(&d, &r, "test.effect", "sleep_ms=1200;sleep_until=2", 1);
    const char *id = ids[0];
    char state[32] = "";
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(10)) {
        job_state(&d, id, state, sizeof(state));
        if (strcmp(state, "RUNNING") == 0)
            break;
    }
    ck_assert_str_eq(state, "RUNNING");
    sleep_ms(300);
    ck_assert_int_eq(kill(a.pid, SIGSTOP), 0);
    int64_t stalled_at = now_ms();

    worker_start(&b, "stall-b", &d, &r, cfg);
    char(*others)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, 20);
    ck_assert_msg(
        wait_count(&d, 20, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == 20,
        "jobs stuck behind the frozen worker; see %s", b.log);
    /* Past the visibility timeout B has reclaimed the frozen worker's entry ... */
    for (int64_t end = now_ms() + 20000; now_ms() < end; sleep_ms(50)) {
        if (now_ms() - stalled_at > 4500 &&
            metric(b.port, "worker_jobs_reclaimed_total{queue=\"equity\"}") >= 1)
            break;
    }
    ck_assert_double_ge(metric(b.port, "worker_jobs_reclaimed_total{queue=\"equity\"}"), 1);
    /* ... but not started a second attempt of the held job. */
    job_state(&d, id, state, sizeof(state));
    ck_assert_str_eq(state, "RUNNING");
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", id), 1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects WHERE job_id = '%s'", id),
                     0);

    ck_assert_int_eq(kill(a.pid, SIGCONT), 0);
    ck_assert_msg(
        wait_count(&d, 21, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == 21,
        "held job not completed; see %s and %s", a.log, b.log);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects WHERE job_id = '%s'", id),
                     1);
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM test_job_effects e JOIN jobs j"
                            " ON j.id = e.job_id AND j.attempts = e.attempt"
                            " WHERE j.id = '%s'",
                            id),
                     1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 21);
    ck_assert_int_eq(stop_pid(a.pid, SIGTERM, 15000), 0);
    ck_assert_int_eq(stop_pid(b.pid, SIGTERM, 15000), 0);
    free(ids);
    free(others);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* A job that always fails: retried with backoff up to its limit (3), then DEAD. */
START_TEST(test_worker_always_failing_job_dead_lettered)
{
    db d;
    redis_srv r;
    db_create(&d, "dead", true);
    redis_start(&r, "dead", false);
    proc w;
    worker_start(&w, "dead", &d, &r, NULL);
    char(*ids)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.fail", NULL, 1);
    const char *id = ids[0];
    long long dead = wait_count(&d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'DEAD'");
    ck_assert_msg(dead == 1, "job not DEAD; see %s", w.log);
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", id), 3);
    ck_assert_int_eq(pg_int(&d, "SELECT max_attempts FROM jobs WHERE id = '%s'", id), 3);
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM jobs WHERE id = '%s' AND finished_at IS "
                            "NOT NULL AND next_run_at IS NULL AND lease_until IS NULL",
                            id),
                     1);
    char err[128];
    pg_text(&d, err, sizeof(err), "SELECT error FROM jobs WHERE id = '%s'", id);
    ck_assert_str_eq(err, "test.fail always fails");

    /* The dead-letter stream holds it once, with its id, type, attempts and error. */
    for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        if (redis_int(&r, "XLEN jobs:equity:dead") == 1)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity:dead"), 1);
    redisContext *c = rconn(&r);
    redisReply *rep = redisCommand(c, "XRANGE jobs:equity:dead - +");
    ck_assert(rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1);
    const redisReply *f = rep->element[0]->element[1];
    char got_id[64] = "", got_type[64] = "", got_att[16] = "", got_err[128] = "";
    bool has_env = false;
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
        const char *key = f->element[k]->str, *val = f->element[k + 1]->str;
        if (strcmp(key, "id") == 0)
            snprintf(got_id, sizeof(got_id), "%s", val);
        else if (strcmp(key, "type") == 0)
            snprintf(got_type, sizeof(got_type), "%s", val);
        else if (strcmp(key, "attempts") == 0)
            snprintf(got_att, sizeof(got_att), "%s", val);
        else if (strcmp(key, "error") == 0)
            snprintf(got_err, sizeof(got_err), "%s", val);
        else if (strcmp(key, "e") == 0)
            has_env = f->element[k + 1]->len > 16;
    }
    freeReplyObject(rep);
    redisFree(c);
    ck_assert_str_eq(got_id, id);
    ck_assert_str_eq(got_type, "test.fail");
    ck_assert_str_eq(got_att, "3");
    ck_assert_str_eq(got_err, "test.fail always fails");
    ck_assert(has_env);
    /* Nothing left in the queue, pending or delayed. */
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    ck_assert_int_eq(redis_int(&r, "ZCARD jobs:equity:delayed"), 0);
    /* Metrics: 3 failed attempts, 2 retried, 1 dead-lettered. */
    const char *l = "{queue=\"equity\",type=\"test.fail\"}";
    char s[160];
    snprintf(s, sizeof(s), "worker_jobs_failed_total%s", l);
    ck_assert_double_eq(metric(w.port, s), 3);
    snprintf(s, sizeof(s), "worker_jobs_retried_total%s", l);
    ck_assert_double_eq(metric(w.port, s), 2);
    snprintf(s, sizeof(s), "worker_jobs_dead_lettered_total%s", l);
    ck_assert_double_eq(metric(w.port, s), 1);
    sleep_ms(300); /* one gauge refresh (WORKER_STATS_INTERVAL_MS=100) */
    ck_assert_double_eq(metric(w.port, "worker_queue_dead_letters{queue=\"equity\"}"), 1);
    ck_assert_double_eq(metric(w.port, "worker_queue_depth{queue=\"equity\"}"), 0);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* Failed attempts roll their effects back (savepoint); the successful one commits once. */
START_TEST(test_worker_retry_rolls_back_failed_attempts)
{
    db d;
    redis_srv r;
    db_create(&d, "retry", true);
    redis_start(&r, "retry", false);
    proc w;
    worker_start(&w, "retry", &d, &r, NULL);
    /* Mixed in one batch with successful jobs: the failures must not disturb them. */
    char(*ok)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, 20);
    char(*ids)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", "fail_until=3", 5);
    long long done =
        wait_count(&d, 25, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    ck_assert_msg(done == 25, "jobs not completed; see %s", w.log);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", ids[i]), 3);
        ck_assert_int_eq(
            pg_int(&d, "SELECT count(*) FROM test_job_effects WHERE job_id = '%s'", ids[i]), 1);
        ck_assert_int_eq(
            pg_int(&d, "SELECT attempt FROM test_job_effects WHERE job_id = '%s'", ids[i]), 3);
        char res[128];
        pg_text(&d, res, sizeof(res), "SELECT result::text FROM jobs WHERE id = '%s'", ids[i]);
        ck_assert_str_eq(res, "{\"effect\": \"inserted\"}");
    }
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 25);
    ck_assert_int_eq(pg_int(&d, "SELECT max(attempts) FROM jobs WHERE id = '%s'", ok[0]), 1);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(ok);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* Two replicas share 10,000 jobs; each job completes exactly once. */
START_TEST(test_worker_two_replicas_10000_jobs_exactly_once)
{
    db d;
    redis_srv r;
    db_create(&d, "two", true);
    redis_start(&r, "two", false);
    proc a, b;
    worker_start(&a, "two-a", &d, &r, NULL);
    worker_start(&b, "two-b", &d, &r, NULL);
    const int n = 10000;
    char(*ids)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, n);
    long long done =
        wait_count(&d, n, 180000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    ck_assert_msg(done == n, "%lld of %d jobs completed; see %s and %s", done, n, a.log, b.log);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs"), n);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), n);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT job_id) FROM test_job_effects"), n);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects e JOIN jobs j"
                                " ON j.id = e.job_id AND j.state = 'SUCCEEDED'"),
                     n);
    ck_assert_int_eq(pg_int(&d, "SELECT max(attempts) FROM jobs"), 1);
    /* Both replicas took part (each consumer name carries its pid). */
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT worker) FROM test_job_effects"), 2);
    ck_assert_int_gt(pg_int(&d,
                            "SELECT count(*) FROM test_job_effects WHERE worker LIKE '%%-%d-%%'",
                            (int)a.pid),
                     0);
    ck_assert_int_gt(pg_int(&d,
                            "SELECT count(*) FROM test_job_effects WHERE worker LIKE '%%-%d-%%'",
                            (int)b.pid),
                     0);
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(50)) {
        if (redis_int(&r, "XLEN jobs:equity") == 0)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    double pa =
        metric(a.port, "worker_jobs_succeeded_total{queue=\"equity\",type=\"test.effect\"}");
    double pb =
        metric(b.port, "worker_jobs_succeeded_total{queue=\"equity\",type=\"test.effect\"}");
    ck_assert_double_eq(pa + pb, n);
    ck_assert_int_eq(stop_pid(a.pid, SIGTERM, 15000), 0);
    ck_assert_int_eq(stop_pid(b.pid, SIGTERM, 15000), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * Redis with an append-only file, killed (SIGKILL) and restarted twice: once idle after a
 * first round of jobs (their acknowledgements must survive: nothing pending, nothing
 * re-run), once in the middle of a second round (every job still completes exactly once).
 */
START_TEST(test_worker_redis_restart_keeps_acknowledged_state)
{
    db d;
    redis_srv r;
    db_create(&d, "restart", true);
    redis_start(&r, "restart", true);
    const char *cfg[] = { "WORKER_VISIBILITY_TIMEOUT_MS=3000", NULL };
    proc w;
    worker_start(&w, "restart", &d, &r, cfg);

    const int n1 = 300, n2 = 2000;
    char(*first)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, n1);
    ck_assert_int_eq(
        wait_count(&d, n1, 60000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), n1);
    for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        if (redis_int(&r, "XLEN jobs:equity") == 0)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    char finished_before[64];
    pg_text(&d, finished_before, sizeof(finished_before),
            "SELECT max(finished_at)::text FROM jobs");

    /* Restart 1: idle.  The group, its (empty) pending list and the acks come back. */
    ck_assert_int_eq(stop_pid(r.pid, SIGKILL, 5000), 128 + SIGKILL);
    redis_run(&r);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);

    /* Restart 2: in the middle of 2,000 jobs. */
    char(*second)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, n2);
    long long seen = 0;
    for (int64_t end = now_ms() + 60000; now_ms() < end; sleep_ms(5)) {
        seen = pg_int(&d, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
        if (seen >= n1 + 200)
            break;
    }
    ck_assert_int_ge(seen, n1 + 200);
    ck_assert_int_eq(stop_pid(r.pid, SIGKILL, 5000), 128 + SIGKILL);
    long long at_kill = pg_int(&d, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    sleep_ms(500);
    redis_run(&r);

    long long done =
        wait_count(&d, n1 + n2, 90000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    ck_assert_msg(done == n1 + n2, "%lld of %d jobs completed (%lld at the kill); see %s", done,
                  n1 + n2, at_kill, w.log);
    ck_assert_int_lt(at_kill, n1 + n2); /* the kill did land mid-processing */
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), n1 + n2);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT job_id) FROM test_job_effects"), n1 + n2);
    /* The first round was not run again: same attempts, same finish times, one effect. */
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM jobs WHERE attempts = 1 AND finished_at <="
                            " '%s'::timestamptz",
                            finished_before),
                     n1);
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM test_job_effects e JOIN jobs j"
                            " ON j.id = e.job_id WHERE j.finished_at <= '%s'::timestamptz",
                            finished_before),
                     n1);
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", first[0]), 1);
    for (int64_t end = now_ms() + 15000; now_ms() < end; sleep_ms(50)) {
        if (redis_int(&r, "XPENDING jobs:equity workers") == 0 &&
            redis_int(&r, "XLEN jobs:equity") == 0)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(first);
    free(second);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * The window between COMMIT and the acknowledgement: Redis freezes (SIGSTOP) while a job
 * runs, so its settle fails after the job committed; Redis is then killed and restarted
 * from its append-only file.  The entry comes back pending, is reclaimed, and the job --
 * already SUCCEEDED -- is acknowledged without running again.
 */
START_TEST(test_worker_committed_unacked_job_not_rerun)
{
    db d;
    redis_srv r;
    db_create(&d, "unacked", true);
    redis_start(&r, "unacked", true);
    const char *cfg[] = { "WORKER_VISIBILITY_TIMEOUT_MS=3000", NULL };
    proc w;
    worker_start(&w, "unacked", &d, &r, cfg);
    char(*ids)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", "sleep_ms=1000", 1);
    const char *id = ids[0];
    char state[32] = "";
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(10)) {
        job_state(&d, id, state, sizeof(state));
        if (strcmp(state, "RUNNING") == 0)
            break;
    }
    ck_assert_str_eq(state, "RUNNING");
    ck_assert_int_eq(kill(r.pid, SIGSTOP), 0);
    /* The job commits while Redis cannot take the acknowledgement. */
    ck_assert_int_eq(
        wait_count(&d, 1, 10000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 1);
    sleep_ms(2500); /* the settle's command timeout (2 s) passes */
    ck_assert_int_eq(stop_pid(r.pid, SIGKILL, 5000), 128 + SIGKILL);
    redis_run(&r);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 1);
    for (int64_t end = now_ms() + 15000; now_ms() < end; sleep_ms(50)) {
        if (redis_int(&r, "XPENDING jobs:equity workers") == 0)
            break;
    }
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    job_state(&d, id, state, sizeof(state));
    ck_assert_str_eq(state, "SUCCEEDED");
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs WHERE id = '%s'", id), 1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 1);
    ck_assert_double_ge(metric(w.port, "worker_jobs_skipped_total{queue=\"equity\"}"), 1);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * Redis loses everything (FLUSHALL): the jobs are still QUEUED in Postgres, the requeue
 * sweep re-publishes them, and a running worker re-creates its consumer group.
 */
START_TEST(test_worker_redis_flush_requeued_from_postgres)
{
    db d;
    redis_srv r;
    db_create(&d, "flush", true);
    redis_start(&r, "flush", false);
    /* Enqueued before any worker exists, then lost. */
    char(*lost)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, 50);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 50);
    redisContext *c = rconn(&r);
    freeReplyObject(redisCommand(c, "FLUSHALL"));
    redisFree(c);
    const char *cfg[] = { "WORKER_REQUEUE_AFTER_MS=1000", "WORKER_SWEEP_INTERVAL_MS=200", NULL };
    proc w;
    worker_start(&w, "flush", &d, &r, cfg);
    ck_assert_msg(
        wait_count(&d, 50, 30000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == 50,
        "lost jobs not re-published; see %s", w.log);
    ck_assert_double_ge(metric(w.port, "worker_jobs_requeued_total{queue=\"equity\"}"), 50);

    /* Flushed under a running worker: the group comes back, new jobs run. */
    c = rconn(&r);
    freeReplyObject(redisCommand(c, "FLUSHALL"));
    redisFree(c);
    sleep_ms(800);
    char(*more)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", NULL, 50);
    ck_assert_msg(
        wait_count(&d, 100, 30000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == 100,
        "jobs after a flush not run; see %s", w.log);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT job_id) FROM test_job_effects"), 100);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 100);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(lost);
    free(more);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* SIGTERM while a job runs: the worker finishes it, settles it, then exits 0. */
START_TEST(test_worker_sigterm_finishes_current_job)
{
    db d;
    redis_srv r;
    db_create(&d, "term", true);
    redis_start(&r, "term", false);
    const char *cfg[] = { "WORKER_VISIBILITY_TIMEOUT_MS=10000", "SHUTDOWN_GRACE_MS=8000", NULL };
    proc w;
    worker_start(&w, "term", &d, &r, cfg);
    char(*ids)[FSR_JOB_ID_LEN + 1] = enqueue(&d, &r, "test.effect", "sleep_ms=1500", 1);
    char state[32] = "";
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(10)) {
        job_state(&d, ids[0], state, sizeof(state));
        if (strcmp(state, "RUNNING") == 0)
            break;
    }
    ck_assert_str_eq(state, "RUNNING");
    int64_t t0 = now_ms();
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    ck_assert_int_ge(now_ms() - t0, 500); /* it did wait for the job */
    job_state(&d, ids[0], state, sizeof(state));
    ck_assert_str_eq(state, "SUCCEEDED");
    ck_assert_int_eq(pg_int(&d, "SELECT attempts FROM jobs"), 1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 1);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 0);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* ---- GetJob across services ----------------------------------------------------------- */

typedef struct svc {
    proc p;
    db d;
} svc;

static void svc_start(svc *s, const char *bin_env, const char *prefix, const char *dbname_tag,
                      const redis_srv *r, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    db_create(&s->d, dbname_tag, false);
    char port_file[400];
    snprintf(s->p.log, sizeof(s->p.log), "%s/%s-%d.log", g_tmp, dbname_tag, (int)getpid());
    snprintf(port_file, sizeof(port_file), "%s/%s-%d.port", g_tmp, dbname_tag, (int)getpid());
    unlink(port_file);
    char *env[32];
    size_t n = 0;
    char buf[600];
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                                                   \
        env[n++] = strdup(buf);                                                                    \
    } while (0)
    ADD("%s_DB_HOST=%s", prefix, env_or("TEST_PG_HOST", "/tmp"));
    ADD("%s_DB_PORT=%s", prefix, env_or("TEST_PG_PORT", "5432"));
    ADD("%s_DB_NAME=%s", prefix, s->d.name);
    ADD("%s_DB_USER=fsr", prefix);
    ADD("%s_REDIS_HOST=127.0.0.1", prefix);
    ADD("%s_REDIS_PORT=%d", prefix, r->port);
    ADD("SHARED_REDIS_HOST=127.0.0.1");
    ADD("SHARED_REDIS_PORT=%d", r->port);
    ADD("PORT=0");
    ADD("PORT_FILE=%s", port_file);
    ADD("THREADS=1");
    ADD("DB_WAIT_MS=30000");
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        ADD("%s", extra[i]);
#undef ADD
    env[n] = NULL;
    char *argv[] = { getenv(bin_env), NULL };
    ck_assert_msg(argv[0] != NULL, "%s not set", bin_env);
    s->p.pid = spawn(argv, env, s->p.log, NULL);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    s->p.port = wait_port_file(s->p.pid, port_file, 60000);
    ck_assert_msg(s->p.port > 0, "%s did not start; see %s", bin_env, s->p.log);
}

typedef struct getjob_result {
    fsr_code code;
    char message[256];
    Jobs__V1__Job *job; /* malloc()ed (protobuf-c default allocator) */
} getjob_result;

static getjob_result get_job(int port, const char *id)
{
    getjob_result g = { 0 };
    fsr_loop *loop;
    fsr_channel *ch;
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    ck_assert_int_eq(fsr_channel_new(loop, target, NULL, &ch), 0);
    Jobs__V1__GetJobRequest req = JOBS__V1__GET_JOB_REQUEST__INIT;
    char idbuf[128];
    snprintf(idbuf, sizeof(idbuf), "%s", id);
    req.id = idbuf;
    fsr_call_opts opts = { .timeout_ms = 5000 };
    ProtobufCMessage *resp = NULL;
    fsr_status st;
    char buf[256];
    ck_assert_int_eq(fsr_channel_unary_blocking(ch, "/jobs.v1.JobService/GetJob", &req.base,
                                                &jobs__v1__job__descriptor, &opts, &resp, &st, buf,
                                                sizeof(buf)),
                     0);
    g.code = st.code;
    snprintf(g.message, sizeof(g.message), "%s", st.message != NULL ? st.message : "");
    g.job = (Jobs__V1__Job *)resp;
    fsr_channel_free(ch);
    fsr_loop_free(loop);
    return g;
}

/*
 * GET /jobs/{id} reaches the portfolio service (the gateway's route); a job of the equity
 * queue is found through its id's owner digit and answered by fsr-equity from its own
 * database.  States, attempts, timestamps, result and error come through.
 */
START_TEST(test_worker_getjob_routed_by_owner)
{
    redis_srv r;
    redis_start(&r, "getjob", false);
    svc eq, pf;
    svc_start(&eq, "FSR_EQUITY_BIN", "EQUITY", "eq", &r, NULL);
    char eq_addr[96], fi_addr[64];
    /* A list of replicas, as the gateway accepts it: the first one is used. */
    snprintf(eq_addr, sizeof(eq_addr), "EQUITY_SERVICE_ADDR=127.0.0.1:%d,127.0.0.1:%d", eq.p.port,
             free_port());
    snprintf(fi_addr, sizeof(fi_addr), "FI_SERVICE_ADDR=127.0.0.1:%d", free_port());
    const char *pf_env[] = { eq_addr, fi_addr, NULL };
    svc_start(&pf, "FSR_PORTFOLIO_BIN", "PORTFOLIO", "pf", &r, pf_env);
    /* The services migrated their databases (jobs included); add test.effect's table. */
    pg_run(eq.d.conninfo, "CREATE TABLE test_job_effects (job_id uuid NOT NULL,"
                          " attempt integer NOT NULL, worker text NOT NULL,"
                          " at timestamptz NOT NULL DEFAULT now())");
    proc w;
    worker_start(&w, "getjob", &eq.d, &r, NULL);

    char(*ok)[FSR_JOB_ID_LEN + 1] = enqueue(&eq.d, &r, "test.effect", NULL, 1);
    char(*bad)[FSR_JOB_ID_LEN + 1] = enqueue(&eq.d, &r, "test.fail", NULL, 1);
    ck_assert_int_eq(
        wait_count(&eq.d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 1);
    ck_assert_int_eq(wait_count(&eq.d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'DEAD'"),
                     1);

    /* Through portfolio (forwarded) and from equity directly: the same answer. */
    int ports[] = { pf.p.port, eq.p.port };
    for (int i = 0; i < 2; i++) {
        getjob_result g = get_job(ports[i], ok[0]);
        ck_assert_msg(g.code == FSR_OK, "GetJob via %d: %d %s", ports[i], g.code, g.message);
        ck_assert_str_eq(g.job->id, ok[0]);
        ck_assert_str_eq(g.job->type, "test.effect");
        ck_assert_int_eq(g.job->state, COMMON__V1__JOB_STATE__VALUE__SUCCEEDED);
        ck_assert_int_eq(g.job->attempts, 1);
        ck_assert_int_eq(g.job->max_attempts, 5);
        ck_assert_ptr_nonnull(g.job->created_at);
        ck_assert_ptr_nonnull(g.job->started_at);
        ck_assert_ptr_nonnull(g.job->finished_at);
        ck_assert_int_ge(g.job->finished_at->seconds, g.job->created_at->seconds);
        ck_assert_ptr_nonnull(g.job->result);
        ck_assert_int_eq(g.job->result->n_fields, 1);
        ck_assert_str_eq(g.job->result->fields[0]->key, "effect");
        ck_assert_str_eq(g.job->result->fields[0]->value->string_value, "inserted");
        ck_assert_str_eq(g.job->error, "");
        protobuf_c_message_free_unpacked(&g.job->base, NULL);

        g = get_job(ports[i], bad[0]);
        ck_assert_int_eq(g.code, FSR_OK);
        ck_assert_int_eq(g.job->state, COMMON__V1__JOB_STATE__VALUE__DEAD);
        ck_assert_int_eq(g.job->attempts, 3);
        ck_assert_int_eq(g.job->max_attempts, 3);
        ck_assert_str_eq(g.job->error, "test.fail always fails");
        ck_assert_ptr_null(g.job->result);
        protobuf_c_message_free_unpacked(&g.job->base, NULL);
    }

    /* A queued job (no worker for portfolio's queue): QUEUED, attempts 0, no start yet. */
    char(*queued)[FSR_JOB_ID_LEN + 1] = NULL;
    {
        /* Portfolio's own queue: enqueue into portfolio's database directly. */
        enq e = { .n = 1, .q = FSR_JOB_QUEUE_PORTFOLIO };
        e.ids = calloc(1, sizeof(*e.ids));
        ck_assert_int_eq(fsr_loop_new(&e.loop), 0);
        fsr_pg_config c2 = { .conninfo = pf.d.conninfo, .size = 1 };
        ck_assert_int_eq(fsr_pg_pool_new(e.loop, &c2, &e.pg), 0);
        ck_assert_int_eq(fsr_redis_new(e.loop, "127.0.0.1", r.port, NULL, &e.redis), 0);
        fsr_job_spec spec = { .type = "portfolio.calculate", .max_attempts = 4 };
        e.spec = &spec;
        enq_pump(&e);
        fsr_loop_run(e.loop);
        fsr_redis_free(e.redis);
        fsr_pg_pool_free(e.pg);
        fsr_loop_free(e.loop);
        ck_assert_int_eq(e.done, 1);
        queued = e.ids;
    }
    fsr_job_queue owner;
    ck_assert_int_eq(fsr_job_id_queue(queued[0], &owner), 0);
    ck_assert_int_eq(owner, FSR_JOB_QUEUE_PORTFOLIO);
    getjob_result g = get_job(pf.p.port, queued[0]);
    ck_assert_int_eq(g.code, FSR_OK);
    ck_assert_int_eq(g.job->state, COMMON__V1__JOB_STATE__VALUE__QUEUED);
    ck_assert_int_eq(g.job->attempts, 0);
    ck_assert_int_eq(g.job->max_attempts, 4);
    ck_assert_str_eq(g.job->type, "portfolio.calculate");
    ck_assert_ptr_nonnull(g.job->created_at);
    ck_assert_ptr_null(g.job->started_at);
    ck_assert_ptr_null(g.job->finished_at);
    protobuf_c_message_free_unpacked(&g.job->base, NULL);
    /* ... and through equity, which forwards it to portfolio (PORTFOLIO_SERVICE_ADDR unset:
     * default localhost:8003 is not ours, so that is UNAVAILABLE or, by chance, NOT_FOUND;
     * not asserted). */

    /* Errors: unknown job, foreign UUID, malformed id, owner unreachable. */
    char missing[FSR_JOB_ID_LEN + 1];
    fsr_job_id_new(FSR_JOB_QUEUE_EQUITY, missing);
    g = get_job(pf.p.port, missing);
    ck_assert_int_eq(g.code, FSR_NOT_FOUND);
    g = get_job(pf.p.port, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    ck_assert_int_eq(g.code, FSR_NOT_FOUND);
    g = get_job(pf.p.port, "not-a-uuid");
    ck_assert_int_eq(g.code, FSR_INVALID_ARGUMENT);
    char fi_job[FSR_JOB_ID_LEN + 1];
    fsr_job_id_new(FSR_JOB_QUEUE_FIXED_INCOME, fi_job);
    g = get_job(pf.p.port, fi_job);
    ck_assert_int_eq(g.code, FSR_UNAVAILABLE);

    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    ck_assert_int_eq(stop_pid(pf.p.pid, SIGTERM, 15000), 0);
    ck_assert_int_eq(stop_pid(eq.p.pid, SIGTERM, 15000), 0);
    free(ok);
    free(bad);
    free(queued);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* ---- the schedule, scheduled jobs, dead consumers, batch enqueue ----------------------- */

/*
 * A fresh database given the real schema of a service: its binary $|bin_env| run with
 * --migrate-only (so the tests follow every migration, other features' included).
 */
static void db_migrated(db *d, const char *tag, const char *bin_env, const char *prefix)
{
    db_create(d, tag, false);
    char log[400];
    snprintf(log, sizeof(log), "%s/migrate-%s-%d.log", g_tmp, d->name, (int)getpid());
    char *env[8];
    size_t n = 0;
    char buf[600];
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                                                   \
        env[n++] = strdup(buf);                                                                    \
    } while (0)
    ADD("%s_DB_HOST=%s", prefix, env_or("TEST_PG_HOST", "/tmp"));
    ADD("%s_DB_PORT=%s", prefix, env_or("TEST_PG_PORT", "5432"));
    ADD("%s_DB_NAME=%s", prefix, d->name);
    ADD("%s_DB_USER=fsr", prefix);
    ADD("DB_WAIT_MS=30000");
#undef ADD
    env[n] = NULL;
    char *argv[] = { getenv(bin_env), "--migrate-only", NULL };
    ck_assert_msg(argv[0] != NULL, "%s not set", bin_env);
    pid_t pid = spawn(argv, env, log, NULL);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    kid_forget(pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s --migrate-only failed; see %s",
                  bin_env, log);
}

/* `promtool check metrics` on the /metrics of |port| (format and lint); noted if missing. */
static void promtool_check(int port)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "worker_test: promtool not found; metrics lint skipped\n");
        return;
    }
    char *text = http_get(port, "/metrics");
    ck_assert_ptr_nonnull(text);
    char *body = strstr(text, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    char path[400], cmd[1000];
    snprintf(path, sizeof(path), "%s/metrics-%d-%d.txt", g_tmp, port, (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(body + 4, f);
    fclose(f);
    free(text);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s.out' 2>&1", path, path);
    ck_assert_msg(system(cmd) == 0, "promtool check metrics failed; see %s.out", path);
}

/* The metric line |series| of |port|, waited for until it is at least |want|. */
static double wait_metric(int port, const char *series, double want, int timeout_ms)
{
    double v = -1;
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; sleep_ms(50)) {
        v = metric(port, series);
        if (v >= want)
            break;
    }
    return v;
}

static void flushall(const redis_srv *r)
{
    redisContext *c = rconn(r);
    redisReply *rep = redisCommand(c, "FLUSHALL");
    ck_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(c);
}

/*
 * Two replicas share a schedule entry due every 2 s (the test hook of WORKER_SCHEDULE):
 * every period gets exactly one job, enqueued by one replica, while the other finds the run
 * there (skipped) or the lock taken (contended).  Redis is then flushed (locks gone, stream
 * gone) and a replica is killed and restarted (its startup check races the other for the
 * current period): the Postgres guard keeps it one job per period, with no period missed.
 */
START_TEST(test_worker_schedule_two_replicas_one_job_per_period)
{
    db d;
    redis_srv r;
    db_create(&d, "sched", true);
    char *sql = read_file(WT_SCHED_SQL);
    pg_run(d.conninfo, sql);
    free(sql);
    redis_start(&r, "sched", false);
    const char *cfg[] = { "WORKER_SCHEDULE=wt.tick=test.effect@every 2s",
                          "WORKER_SCHEDULE_TICK_MS=50",
                          "WORKER_SCHEDULE_LOCK_TTL_MS=3000",
                          "WORKER_REQUEUE_AFTER_MS=1000",
                          "WORKER_SWEEP_INTERVAL_MS=200",
                          NULL };
    proc a, b, a2;
    worker_start(&a, "sched-a", &d, &r, cfg);
    worker_start(&b, "sched-b", &d, &r, cfg);
    const char *count_runs = "SELECT count(*) FROM scheduled_runs";
    long long runs = 0;
    for (int64_t end = now_ms() + 20000; now_ms() < end && runs < 4; sleep_ms(100))
        runs = pg_int(&d, "%s", count_runs);
    ck_assert_msg(runs >= 4, "%lld runs after 20 s; see %s and %s", runs, a.log, b.log);

    /* Redis loses everything, then replica A dies and comes back at once. */
    flushall(&r);
    sleep_ms(1000);
    ck_assert_int_eq(stop_pid(a.pid, SIGKILL, 5000), 128 + SIGKILL);
    long long before = pg_int(&d, "%s", count_runs);
    worker_start(&a2, "sched-a2", &d, &r, cfg);
    for (int64_t end = now_ms() + 20000; now_ms() < end && runs < before + 4; sleep_ms(100))
        runs = pg_int(&d, "%s", count_runs);
    ck_assert_msg(runs >= before + 4, "%lld runs; see %s and %s", runs, a2.log, b.log);
    /* A2's first check found the current period enqueued, or enqueued it: either way it ran. */
    char s_enq[160], s_skip[160], s_lock[160], s_cont[160];
    const char *l = "{queue=\"equity\",schedule=\"wt.tick\"}";
    snprintf(s_enq, sizeof(s_enq), "worker_schedule_runs_enqueued_total%s", l);
    snprintf(s_skip, sizeof(s_skip), "worker_schedule_runs_skipped_total%s", l);
    snprintf(s_lock, sizeof(s_lock), "worker_schedule_lock_acquisitions_total%s", l);
    snprintf(s_cont, sizeof(s_cont), "worker_schedule_lock_contended_total%s", l);
    double a2_enq = metric(a2.port, s_enq), a2_skip = metric(a2.port, s_skip);
    double a2_cont = metric(a2.port, s_cont);
    ck_assert_double_ge(a2_enq + a2_skip, 1);
    ck_assert_int_eq(stop_pid(a2.pid, SIGTERM, 15000), 0);
    /*
     * B alone for a period, then stopped right after a period's run (0.6 s into the 2 s
     * period), so that its metrics, read just before, are final.
     */
    sleep_ms(2000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long phase = (long)(ts.tv_sec % 2) * 1000 + ts.tv_nsec / 1000000;
    sleep_ms((int)((2600 - phase) % 2000));
    double b_enq = metric(b.port, s_enq), b_skip = metric(b.port, s_skip);
    double b_lock = metric(b.port, s_lock), b_cont = metric(b.port, s_cont);
    promtool_check(b.port);
    ck_assert_int_eq(stop_pid(b.pid, SIGTERM, 15000), 0);
    long long total = pg_int(&d, "%s", count_runs);
    /* A worker without a schedule finishes the jobs (the flush's are re-published). */
    const char *plain[] = { "WORKER_SCHEDULE=off", "WORKER_REQUEUE_AFTER_MS=1000",
                            "WORKER_SWEEP_INTERVAL_MS=200", NULL };
    proc c;
    worker_start(&c, "sched-c", &d, &r, plain);
    ck_assert_int_eq(
        wait_count(&d, total, 30000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), total);
    ck_assert_int_eq(stop_pid(c.pid, SIGTERM, 15000), 0);
    ck_assert_int_eq(pg_int(&d, "%s", count_runs), total);

    /* One job per run, one run per job, and no period without its run. */
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs"), total);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs j JOIN scheduled_runs s"
                                " ON s.job_id = j.id AND s.job_type = j.type"),
                     total);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT due_at) FROM scheduled_runs"), total);
    ck_assert_int_eq(pg_int(&d, "SELECT (extract(epoch FROM max(due_at) - min(due_at)) / 2)::int"
                                " + 1 FROM scheduled_runs"),
                     total);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM scheduled_runs WHERE"
                                " extract(epoch FROM due_at)::bigint %% 2 <> 0"
                                " OR slot <> extract(epoch FROM due_at)::bigint %% 86400"
                                " OR run_date <> (due_at AT TIME ZONE 'UTC')::date"),
                     0);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), total);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT job_id) FROM test_job_effects"), total);
    /* The payload names the run. */
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs j JOIN scheduled_runs s ON s.job_id"
                                " = j.id WHERE convert_from(j.payload, 'UTF8')::jsonb"
                                " @> jsonb_build_object('schedule', 'wt.tick', 'run_date',"
                                " s.run_date::text)"),
                     total);
    /* B's share: what the table says it enqueued, each under the lock; it saw A's too. */
    ck_assert_int_eq((long long)b_enq, pg_int(&d,
                                              "SELECT count(*) FROM scheduled_runs WHERE"
                                              " enqueued_by LIKE '%%-%d-%%'",
                                              (int)b.pid));
    ck_assert_int_eq((long long)a2_enq, pg_int(&d,
                                               "SELECT count(*) FROM scheduled_runs WHERE"
                                               " enqueued_by LIKE '%%-%d-%%'",
                                               (int)a2.pid));
    ck_assert_double_ge(b_lock, b_enq);
    /* Each period one replica lost the race: it found the run there (or the lock taken). */
    ck_assert_double_gt(b_skip + b_cont + a2_skip + a2_cont, 0);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * A daily entry whose time has passed while no worker ran (its last run five days ago):
 * the worker that starts enqueues the latest missed run once -- not one per missed day --
 * and a restart does not enqueue it again.  The per-entry variable overrides the time.
 */
START_TEST(test_worker_schedule_missed_daily_run_caught_up_once)
{
    db d;
    redis_srv r;
    db_create(&d, "daily", true);
    char *sql = read_file(WT_SCHED_SQL);
    pg_run(d.conninfo, sql);
    free(sql);
    redis_start(&r, "daily", false);
    /* Due an hour from now, so the latest due time is the previous day's. */
    time_t now = time(NULL);
    int at = (int)((now + 3600) % 86400) / 60 * 60;
    long long due = (long long)now - now % 86400 + at;
    if (due > now)
        due -= 86400;
    char when[64], run_date[16];
    snprintf(when, sizeof(when), "WORKER_SCHEDULE_WT_DAILY=%02d:%02d UTC", at / 3600, at / 60 % 60);
    time_t due_t = (time_t)due;
    struct tm tm;
    gmtime_r(&due_t, &tm);
    strftime(run_date, sizeof(run_date), "%Y-%m-%d", &tm);
    pg_run(d.conninfo, "INSERT INTO scheduled_runs (schedule_name, run_date, due_at, job_id,"
                       " job_type, enqueued_by) VALUES ('wt.daily', current_date - 5, now() -"
                       " interval '5 days', gen_random_uuid(), 'test.effect', 'earlier')");
    const char *cfg[] = { "WORKER_SCHEDULE=wt.daily=test.effect@00:00 UTC", when,
                          "WORKER_SCHEDULE_TICK_MS=50", NULL };
    proc w, w2;
    worker_start(&w, "daily", &d, &r, cfg);
    ck_assert_int_eq(
        wait_count(&d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 1);
    sleep_ms(500); /* a few more ticks: nothing more may come */
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM scheduled_runs"), 2);
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM scheduled_runs WHERE run_date = '%s' AND"
                            " slot = 0 AND extract(epoch FROM due_at)::bigint = %lld",
                            run_date, due),
                     1);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs j JOIN scheduled_runs s ON"
                                " s.job_id = j.id WHERE j.type = 'test.effect'"),
                     1);
    char payload[256];
    pg_text(&d, payload, sizeof(payload), "SELECT convert_from(payload, 'UTF8') FROM jobs");
    char want[128];
    snprintf(want, sizeof(want), "\"run_date\":\"%s\"", run_date);
    ck_assert_msg(strstr(payload, want) != NULL, "payload %s", payload);
    const char *l = "{queue=\"equity\",schedule=\"wt.daily\"}";
    char s_enq[160], s_skip[160];
    snprintf(s_enq, sizeof(s_enq), "worker_schedule_runs_enqueued_total%s", l);
    snprintf(s_skip, sizeof(s_skip), "worker_schedule_runs_skipped_total%s", l);
    ck_assert_double_eq(metric(w.port, s_enq), 1);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);

    /* Restarted: the run is there; nothing new. */
    worker_start(&w2, "daily2", &d, &r, cfg);
    ck_assert_double_eq(wait_metric(w2.port, s_skip, 1, 10000), 1);
    ck_assert_double_eq(metric(w2.port, s_enq), 0);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM scheduled_runs"), 2);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs"), 1);
    ck_assert_int_eq(stop_pid(w2.pid, SIGTERM, 15000), 0);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* A schedule the worker cannot honour is refused at startup (exit 2, naming the variable). */
START_TEST(test_worker_schedule_bad_config_refused)
{
    static const char *const bad[][2] = {
        { "WORKER_SCHEDULE=x=no.such.type@22:00", "unknown job type 'no.such.type'" },
        { "WORKER_SCHEDULE=noop@25:00", "'25:00' is not" },
        { "WORKER_SCHEDULE=a=noop@every 0s", "'every 0s' is not" },
        { "WORKER_SCHEDULE=a=noop@1:00,a=noop@2:00", "schedule 'a' is listed twice" },
        { "WORKER_SCHEDULE_NOOP=later", "WORKER_SCHEDULE_NOOP: schedule 'noop': 'later' is not" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char log[400];
        snprintf(log, sizeof(log), "%s/badcfg-%zu-%d.log", g_tmp, i, (int)getpid());
        char var[128];
        snprintf(var, sizeof(var), "%s", bad[i][0]);
        char *env[] = { var, "WORKER_SCHEDULE_TICK_MS=50", NULL };
        char noop_sched[] = "WORKER_SCHEDULE=noop@03:00";
        if (strncmp(bad[i][0], "WORKER_SCHEDULE_NOOP", 20) == 0)
            env[1] = noop_sched;
        char *argv[] = { getenv("FSR_WORKER_BIN"), "--queue", "equity", NULL };
        pid_t pid = spawn(argv, env, log, NULL);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        kid_forget(pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", bad[i][0],
                      status);
        char *text = read_file(log);
        ck_assert_msg(strstr(text, bad[i][1]) != NULL, "%s: %s", bad[i][0], text);
        free(text);
    }
}
END_TEST

/* One bond of the fi.eod_reprice test. */
typedef struct eod_bond {
    const char *id;
    double coupon;
    int freq;
    const char *day_count, *issue, *maturity;
} eod_bond;

/*
 * The stored row of |b| for |date| equals what fi_math computes from the same quote,
 * exactly (float8 text round-trips).
 */
static void eod_row_check(const db *d, const eod_bond *b, const char *date, bool from_clean,
                          double v, const char *quote_date)
{
    fi_terms t = { .coupon_rate = b->coupon,
                   .frequency = b->freq,
                   .day_count = fi_day_count_from_name(b->day_count),
                   .issue_date = fi_date_parse(b->issue),
                   .maturity_date = fi_date_parse(b->maturity) };
    static fi_period periods[FI_MAX_PERIODS];
    fi_bond bond;
    ck_assert_int_eq(fi_bond_init(&bond, &t, periods, FI_MAX_PERIODS), 0);
    fi_analytics a;
    int32_t settle = fi_date_parse(date);
    ck_assert_int_eq(from_clean ? fi_bond_price_from_clean(&bond, settle, v, &a)
                                : fi_bond_price(&bond, settle, v, &a),
                     0);
    char row[1024];
    pg_text(d, row, sizeof(row),
            "SELECT concat_ws(' ', quote_date, from_clean_price, yield, clean_price,"
            " dirty_price, accrued, macaulay_duration, modified_duration, convexity, bpv)"
            " FROM bond_eod_analytics WHERE bond_id = '%s' AND date = '%s'",
            b->id, date);
    char qd[16], fc[8];
    double got[8];
    ck_assert_int_eq(sscanf(row, "%15s %7s %lf %lf %lf %lf %lf %lf %lf %lf", qd, fc, &got[0],
                            &got[1], &got[2], &got[3], &got[4], &got[5], &got[6], &got[7]),
                     10);
    ck_assert_str_eq(qd, quote_date);
    ck_assert_str_eq(fc, from_clean ? "t" : "f");
    double want[] = { a.yield,
                      a.clean_price,
                      a.dirty_price,
                      a.accrued,
                      a.macaulay_duration,
                      a.modified_duration,
                      a.convexity,
                      a.bpv };
    for (int i = 0; i < 8; i++)
        ck_assert_msg(got[i] == want[i], "bond %s field %d: stored %.17g, fi_math %.17g", b->id, i,
                      got[i], want[i]);
}

/* Runs one fi.eod_reprice job for |date| on |w|'s queue; returns its id (static). */
static const char *eod_run(const db *d, const redis_srv *r, const char *date)
{
    static char id[FSR_JOB_ID_LEN + 1];
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"run_date\":\"%s\"}", date);
    long long done = pg_int(d, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    char(*ids)[FSR_JOB_ID_LEN + 1] =
        enqueue_q(d, r, FSR_JOB_QUEUE_FIXED_INCOME, "fi.eod_reprice", payload, 1);
    memcpy(id, ids[0], sizeof(id));
    free(ids);
    ck_assert_int_eq(
        wait_count(d, done + 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"),
        done + 1);
    char state[32];
    job_state(d, id, state, sizeof(state));
    ck_assert_str_eq(state, "SUCCEEDED");
    return id;
}

static long long result_int(const db *d, const char *id, const char *key)
{
    return pg_int(d, "SELECT (result ->> '%s')::bigint FROM jobs WHERE id = '%s'", key, id);
}

/*
 * fi.eod_reprice on the fixed income schema: every outstanding bond priced from its latest
 * quote on or before the date (a later quote ignored), the numbers equal to fi_math's, bonds
 * without a quote, not outstanding or unpriceable counted and skipped; a re-run leaves the
 * rows byte for byte; a changed quote updates one row, a removed one removes its row, and
 * other dates stay untouched.
 */
START_TEST(test_worker_fi_eod_reprice)
{
    db d;
    redis_srv r;
    db_migrated(&d, "fieod", "FSR_FIXED_INCOME_BIN", "FI");
    redis_start(&r, "fieod", false);
    static const eod_bond bonds[] = {
        { "00000000-0000-4000-8000-000000000001", 0.05, 2, "THIRTY_360_US", "2020-01-15",
          "2030-01-15" },
        { "00000000-0000-4000-8000-000000000002", 0.03, 1, "ACT_ACT_ICMA", "2021-03-01",
          "2031-03-01" },
        { "00000000-0000-4000-8000-000000000003", 0.0, 0, "ACT_365_FIXED", "2022-01-01",
          "2027-01-01" },
        { "00000000-0000-4000-8000-000000000004", 0.04, 4, "ACT_360", "2019-01-01", "2029-01-01" },
        { "00000000-0000-4000-8000-000000000005", 0.04, 2, "ACT_360", "2010-01-01", "2015-01-01" },
        { "00000000-0000-4000-8000-000000000006", 0.04, 2, "ACT_360", "2025-01-01", "2030-01-01" },
        { "00000000-0000-4000-8000-000000000007", 0.06, 2, "ACT_ACT_ISDA", "2020-05-01",
          "2035-05-01" },
        { "00000000-0000-4000-8000-000000000008", 0.025, 12, "THIRTY_E_360", "2023-02-28",
          "2026-02-28" },
    };
    for (size_t i = 0; i < sizeof(bonds) / sizeof(bonds[0]); i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO bonds (id, name, issuer, currency, face, coupon_rate, frequency,"
                 " day_count, issue_date, maturity_date) VALUES ('%s', 'b%zu', 'Issuer', 'USD',"
                 " 1000, %.17g, %d, '%s', '%s', '%s')",
                 bonds[i].id, i, bonds[i].coupon, bonds[i].freq, bonds[i].day_count, bonds[i].issue,
                 bonds[i].maturity);
        pg_run(d.conninfo, sql);
    }
    pg_run(d.conninfo, "INSERT INTO bond_quotes (bond_id, date, clean_price, yield) VALUES"
                       " ('00000000-0000-4000-8000-000000000001', '2024-06-25', 101.5, NULL),"
                       " ('00000000-0000-4000-8000-000000000001', '2024-06-20', 99.0, NULL),"
                       " ('00000000-0000-4000-8000-000000000001', '2024-07-01', 90.0, NULL),"
                       " ('00000000-0000-4000-8000-000000000002', '2024-06-28', NULL, 0.041),"
                       " ('00000000-0000-4000-8000-000000000003', '2024-06-01', 88.25, NULL),"
                       " ('00000000-0000-4000-8000-000000000005', '2014-06-01', NULL, 0.03),"
                       " ('00000000-0000-4000-8000-000000000006', '2024-06-01', NULL, 0.03),"
                       " ('00000000-0000-4000-8000-000000000007', '2024-06-27', -5, NULL),"
                       " ('00000000-0000-4000-8000-000000000008', '2024-06-26', NULL, -0.001)");
    /* A row of another date, which runs for 2024-06-28 must leave alone. */
    pg_run(d.conninfo, "INSERT INTO bond_eod_analytics (bond_id, date, quote_date,"
                       " from_clean_price, yield, clean_price, dirty_price, accrued,"
                       " macaulay_duration, modified_duration, convexity, bpv) VALUES"
                       " ('00000000-0000-4000-8000-000000000004', '2024-06-27', '2024-06-27',"
                       " false, 0.04, 100, 100, 0, 1, 1, 1, -0.01)");
    const char *cfg[] = { "WORKER_SCHEDULE=off", NULL };
    proc w;
    worker_start_queue(&w, "fieod", "fixed_income", "FI", &d, &r, cfg);

    const char *date = "2024-06-28";
    const char *id = eod_run(&d, &r, date);
    ck_assert_int_eq(result_int(&d, id, "bonds"), 8);
    ck_assert_int_eq(result_int(&d, id, "priced"), 4);
    ck_assert_int_eq(result_int(&d, id, "no_quote"), 1);
    ck_assert_int_eq(result_int(&d, id, "not_outstanding"), 2);
    ck_assert_int_eq(result_int(&d, id, "failed"), 1);
    ck_assert_int_eq(result_int(&d, id, "inserted"), 4);
    ck_assert_int_eq(result_int(&d, id, "updated"), 0);
    ck_assert_int_eq(result_int(&d, id, "removed"), 0);
    char failed[64];
    pg_text(&d, failed, sizeof(failed),
            "SELECT result -> 'errors' -> 0 ->> 'bond_id' FROM jobs"
            " WHERE id = '%s'",
            id);
    ck_assert_str_eq(failed, bonds[6].id);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM bond_eod_analytics WHERE date = '%s'", date),
                     4);
    eod_row_check(&d, &bonds[0], date, true, 101.5, "2024-06-25");
    eod_row_check(&d, &bonds[1], date, false, 0.041, "2024-06-28");
    eod_row_check(&d, &bonds[2], date, true, 88.25, "2024-06-01");
    eod_row_check(&d, &bonds[7], date, false, -0.001, "2024-06-26");

    /* The same date again: identical rows, computed_at included. */
    char before[64], after[64];
    const char *digest = "SELECT md5(string_agg(e::text, '|' ORDER BY bond_id, date))"
                         " FROM bond_eod_analytics e";
    pg_text(&d, before, sizeof(before), "%s", digest);
    id = eod_run(&d, &r, date);
    ck_assert_int_eq(result_int(&d, id, "priced"), 4);
    ck_assert_int_eq(result_int(&d, id, "inserted"), 0);
    ck_assert_int_eq(result_int(&d, id, "updated"), 0);
    ck_assert_int_eq(result_int(&d, id, "removed"), 0);
    pg_text(&d, after, sizeof(after), "%s", digest);
    ck_assert_str_eq(after, before);

    /* A corrected quote updates its row; a withdrawn one takes its row away. */
    pg_run(d.conninfo, "UPDATE bond_quotes SET clean_price = 102.125 WHERE bond_id ="
                       " '00000000-0000-4000-8000-000000000001' AND date = '2024-06-25'");
    pg_run(d.conninfo, "DELETE FROM bond_quotes WHERE bond_id ="
                       " '00000000-0000-4000-8000-000000000003'");
    id = eod_run(&d, &r, date);
    ck_assert_int_eq(result_int(&d, id, "priced"), 3);
    ck_assert_int_eq(result_int(&d, id, "no_quote"), 2);
    ck_assert_int_eq(result_int(&d, id, "inserted"), 0);
    ck_assert_int_eq(result_int(&d, id, "updated"), 1);
    ck_assert_int_eq(result_int(&d, id, "removed"), 1);
    eod_row_check(&d, &bonds[0], date, true, 102.125, "2024-06-25");
    eod_row_check(&d, &bonds[1], date, false, 0.041, "2024-06-28");
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM bond_eod_analytics WHERE date = '%s'", date),
                     3);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM bond_eod_analytics WHERE date ="
                                " '2024-06-27'"),
                     1);
    /* A bad payload fails the job (and is retried, then DEAD): nothing written. */
    char(*bad)[FSR_JOB_ID_LEN + 1] =
        enqueue_q(&d, &r, FSR_JOB_QUEUE_FIXED_INCOME, "fi.eod_reprice", "{\"run_date\":\"x\"}", 1);
    ck_assert_int_eq(wait_count(&d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'DEAD'"), 1);
    char err[128];
    pg_text(&d, err, sizeof(err), "SELECT error FROM jobs WHERE id = '%s'", bad[0]);
    ck_assert_str_eq(err, "payload: run_date must be a date \"YYYY-MM-DD\"");
    free(bad);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/*
 * pf.idempotency_cleanup on the portfolio schema: keys older than the retention go, newer
 * ones stay; WORKER_IDEMPOTENCY_RETENTION_MS moves the line.
 */
START_TEST(test_worker_pf_idempotency_cleanup)
{
    db d;
    redis_srv r;
    db_migrated(&d, "pfidem", "FSR_PORTFOLIO_BIN", "PORTFOLIO");
    redis_start(&r, "pfidem", false);
    pg_run(d.conninfo,
           "INSERT INTO idempotency_keys (client_id, key, method, request_hash, response,"
           " created_at) VALUES"
           " ('c1', 'k48h', 'm', '\\x00', '\\x00', now() - interval '48 hours'),"
           " ('c1', 'k25h', 'm', '\\x00', '\\x00', now() - interval '25 hours'),"
           " ('c2', 'k23h', 'm', '\\x00', '\\x00', now() - interval '23 hours'),"
           " ('c2', 'k1h', 'm', '\\x00', '\\x00', now() - interval '1 hour'),"
           " ('', 'know', 'm', '\\x00', '\\x00', now())");
    const char *cfg[] = { "WORKER_SCHEDULE=off", NULL };
    proc w;
    worker_start_queue(&w, "pfidem", "portfolio", "PORTFOLIO", &d, &r, cfg);
    char(*ids)[FSR_JOB_ID_LEN + 1] =
        enqueue_q(&d, &r, FSR_JOB_QUEUE_PORTFOLIO, "pf.idempotency_cleanup", NULL, 1);
    ck_assert_int_eq(
        wait_count(&d, 1, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 1);
    ck_assert_int_eq(result_int(&d, ids[0], "deleted"), 2);
    ck_assert_int_eq(result_int(&d, ids[0], "retention_ms"), 86400000);
    char keys[128];
    pg_text(&d, keys, sizeof(keys),
            "SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_keys");
    ck_assert_str_eq(keys, "k1h,k23h,know");
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(ids);

    const char *cfg2[] = { "WORKER_SCHEDULE=off", "WORKER_IDEMPOTENCY_RETENTION_MS=30m", NULL };
    worker_start_queue(&w, "pfidem2", "portfolio", "PORTFOLIO", &d, &r, cfg2);
    ids = enqueue_q(&d, &r, FSR_JOB_QUEUE_PORTFOLIO, "pf.idempotency_cleanup", NULL, 1);
    ck_assert_int_eq(
        wait_count(&d, 2, 20000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 2);
    ck_assert_int_eq(result_int(&d, ids[0], "deleted"), 2);
    pg_text(&d, keys, sizeof(keys),
            "SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_keys");
    ck_assert_str_eq(keys, "know");
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(ids);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

/* The names of the group's consumers, comma-separated, in XINFO's order, into |out|. */
static void consumer_names(const redis_srv *r, char *out, size_t cap)
{
    redisContext *c = rconn(r);
    redisReply *rep = redisCommand(c, "XINFO CONSUMERS jobs:equity workers");
    ck_assert(rep != NULL && rep->type == REDIS_REPLY_ARRAY);
    out[0] = '\0';
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        for (size_t k = 0; k + 1 < e->elements; k += 2) {
            if (strcmp(e->element[k]->str, "name") == 0) {
                size_t n = strlen(out);
                snprintf(out + n, cap - n, "%s%s", n > 0 ? "," : "", e->element[k + 1]->str);
            }
        }
    }
    freeReplyObject(rep);
    redisFree(c);
}

/*
 * Dead consumers: one idle with nothing pending is removed; one idle holding a pending
 * entry is kept (its entry must be reclaimed first); one idle whose process beats a
 * heartbeat is kept (Redis 7.0 does not reset the idle time of an empty read), and so is
 * the worker's own, idle too once its only job is done.
 */
START_TEST(test_worker_dead_consumers_removed)
{
    db d;
    redis_srv r;
    db_create(&d, "gc", true);
    redis_start(&r, "gc", false);
    redisContext *c = rconn(&r);
    const char *cmds[] = { "XGROUP CREATE jobs:equity workers 0 MKSTREAM",
                           "XGROUP CREATECONSUMER jobs:equity workers gone-idle",
                           "XADD jobs:equity * e not-a-job",
                           "XREADGROUP GROUP workers gone-pending COUNT 1 STREAMS jobs:equity >",
                           "XGROUP CREATECONSUMER jobs:equity workers otherhost-77-0",
                           "HSET jobs:equity:consumers:alive otherhost-77- 99999999999999" };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        redisReply *rep = redisCommand(c, cmds[i]);
        ck_assert_msg(rep != NULL && rep->type != REDIS_REPLY_ERROR, "%s", cmds[i]);
        freeReplyObject(rep);
    }
    redisFree(c);
    sleep_ms(1300);
    /* Visibility far away: the pending entry stays where it is during the test. */
    const char *cfg[] = { "WORKER_CONSUMER_IDLE_MS=1000", "WORKER_CONSUMER_GC_INTERVAL_MS=100",
                          "WORKER_VISIBILITY_TIMEOUT_MS=120000", "WORKER_BLOCK_MS=200", NULL };
    proc w;
    worker_start(&w, "gc", &d, &r, cfg);
    free(enqueue(&d, &r, "test.effect", NULL, 1)); /* the worker's consumer exists once it reads */
    ck_assert_int_eq(
        wait_count(&d, 1, 10000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 1);
    ck_assert_double_eq(
        wait_metric(w.port, "worker_consumers_removed_total{queue=\"equity\"}", 1, 10000), 1);
    sleep_ms(1500); /* more rounds, past the threshold for the worker's own consumer too */
    ck_assert_double_eq(metric(w.port, "worker_consumers_removed_total{queue=\"equity\"}"), 1);
    char names[512], own[64];
    consumer_names(&r, names, sizeof(names));
    snprintf(own, sizeof(own), "-%d-0", (int)w.pid);
    ck_assert_msg(strstr(names, "gone-idle") == NULL, "consumers: %s", names);
    ck_assert_msg(strstr(names, "gone-pending") != NULL, "consumers: %s", names);
    ck_assert_msg(strstr(names, own) != NULL, "consumers: %s", names);
    ck_assert_msg(strstr(names, "otherhost-77-0") != NULL, "consumers: %s", names);
    ck_assert_int_eq(redis_int(&r, "XPENDING jobs:equity workers"), 1);
    /* The worker beats its own heartbeat. */
    char field[64];
    snprintf(field, sizeof(field), "-%d-", (int)w.pid);
    redisContext *hc = rconn(&r);
    redisReply *hb = redisCommand(hc, "HKEYS jobs:equity:consumers:alive");
    ck_assert(hb != NULL && hb->type == REDIS_REPLY_ARRAY);
    bool beating = false;
    for (size_t i = 0; i < hb->elements; i++)
        beating |= strstr(hb->element[i]->str, field) != NULL;
    freeReplyObject(hb);
    redisFree(hc);
    ck_assert(beating);
    promtool_check(w.port);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

typedef struct batch_enq {
    fsr_loop *loop;
    int status;
    size_t n;
    int unpublished;
    char (*ids)[FSR_JOB_ID_LEN + 1];
    int64_t created_s[2];
} batch_enq;

static void on_batch_enq(const fsr_job_info *infos, size_t n, int status, void *arg)
{
    batch_enq *b = arg;
    b->status = status;
    b->n = n;
    b->ids = calloc(n > 0 ? n : 1, sizeof(*b->ids));
    for (size_t i = 0; i < n; i++) {
        memcpy(b->ids[i], infos[i].id, sizeof(b->ids[i]));
        b->unpublished += !infos[i].published;
        ck_assert_int_eq(infos[i].max_attempts, 7);
        ck_assert_str_eq(infos[i].type, "test.effect");
    }
    if (n > 0) {
        b->created_s[0] = infos[0].created_s;
        b->created_s[1] = infos[n - 1].created_s;
    }
    fsr_loop_stop(b->loop);
}

/*
 * fsr_job_enqueue_batch(): 3 x 1,000 jobs in three INSERTs and three XADD pipelines, all
 * run exactly once by the worker; payloads and request ids with quotes and backslashes
 * survive the array literals; a bad spec anywhere refuses the whole batch, writing nothing.
 */
START_TEST(test_worker_enqueue_batch)
{
    db d;
    redis_srv r;
    db_create(&d, "batch", true);
    redis_start(&r, "batch", false);
    fsr_loop *loop;
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    fsr_pg_config pc = { .conninfo = d.conninfo, .size = 2 };
    fsr_pg_pool *pg;
    fsr_redis *redis;
    ck_assert_int_eq(fsr_pg_pool_new(loop, &pc, &pg), 0);
    ck_assert_int_eq(fsr_redis_new(loop, "127.0.0.1", r.port, NULL, &redis), 0);
    enum {
        N = 1000
    };
    static fsr_job_spec specs[N];
    const char *odd = "quote\" backslash\\ {brace,comma} NULL";
    for (int i = 0; i < N; i++)
        specs[i] = (fsr_job_spec){ .type = "test.effect",
                                   .payload = odd,
                                   .payload_len = strlen(odd),
                                   .max_attempts = 7,
                                   .request_id = i % 2 ? odd : NULL };
    /* Refused before anything is sent. */
    ck_assert_int_eq(
        fsr_job_enqueue_batch(pg, redis, FSR_JOB_QUEUE_EQUITY, specs, 0, on_batch_enq, NULL),
        -EINVAL);
    ck_assert_int_eq(fsr_job_enqueue_batch(pg, redis, FSR_JOB_QUEUE_EQUITY, specs,
                                           FSR_JOB_BATCH_MAX + 1, on_batch_enq, NULL),
                     -EINVAL);
    specs[500].type = "Bad Type";
    ck_assert_int_eq(
        fsr_job_enqueue_batch(pg, redis, FSR_JOB_QUEUE_EQUITY, specs, N, on_batch_enq, NULL),
        -EINVAL);
    specs[500].type = "test.effect";
    char(*all)[FSR_JOB_ID_LEN + 1] = calloc(3 * N, sizeof(*all));
    for (int round = 0; round < 3; round++) {
        batch_enq b = { .loop = loop, .status = 1 };
        ck_assert_int_eq(
            fsr_job_enqueue_batch(pg, redis, FSR_JOB_QUEUE_EQUITY, specs, N, on_batch_enq, &b), 0);
        fsr_loop_run(loop);
        ck_assert_int_eq(b.status, 0);
        ck_assert_uint_eq(b.n, N);
        ck_assert_int_eq(b.unpublished, 0);
        ck_assert_int_eq(b.created_s[0], b.created_s[1]);
        for (int i = 0; i < N; i++) {
            fsr_job_queue owner;
            ck_assert_int_eq(fsr_job_id_queue(b.ids[i], &owner), 0);
            ck_assert_int_eq(owner, FSR_JOB_QUEUE_EQUITY);
        }
        memcpy(all[round * N], b.ids, N * sizeof(*all));
        free(b.ids);
    }
    fsr_redis_free(redis);
    fsr_pg_pool_free(pg);
    fsr_loop_free(loop);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs"), 3 * N);
    ck_assert_int_eq(redis_int(&r, "XLEN jobs:equity"), 3 * N);
    ck_assert_int_eq(pg_int(&d,
                            "SELECT count(*) FROM jobs WHERE id IN ('%s', '%s') AND"
                            " state = 'QUEUED' AND max_attempts = 7",
                            all[0], all[3 * N - 1]),
                     2);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs WHERE payload = convert_to("
                                "'quote\" backslash\\ {brace,comma} NULL', 'UTF8')"),
                     3 * N);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs WHERE request_id ="
                                " 'quote\" backslash\\ {brace,comma} NULL'"),
                     3 * N / 2);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM jobs WHERE request_id IS NULL"), 3 * N / 2);

    proc w;
    worker_start(&w, "batch", &d, &r, NULL);
    ck_assert_int_eq(
        wait_count(&d, 3 * N, 60000, "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), 3 * N);
    ck_assert_int_eq(pg_int(&d, "SELECT count(DISTINCT job_id) FROM test_job_effects"), 3 * N);
    ck_assert_int_eq(pg_int(&d, "SELECT count(*) FROM test_job_effects"), 3 * N);
    ck_assert_int_eq(stop_pid(w.pid, SIGTERM, 15000), 0);
    free(all);
    stop_pid(r.pid, SIGKILL, 5000);
}
END_TEST

static Suite *worker_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("ids");
    tcase_add_test(tc, test_worker_job_ids);
    suite_add_tcase(s, tc);

    tc = tcase_create("reclaim");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_worker_sigkill_mid_job_reclaimed_once);
    tcase_add_test(tc, test_worker_stalled_worker_not_run_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("retries");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_worker_always_failing_job_dead_lettered);
    tcase_add_test(tc, test_worker_retry_rolls_back_failed_attempts);
    suite_add_tcase(s, tc);

    tc = tcase_create("replicas");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_worker_two_replicas_10000_jobs_exactly_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_worker_redis_restart_keeps_acknowledged_state);
    tcase_add_test(tc, test_worker_committed_unacked_job_not_rerun);
    tcase_add_test(tc, test_worker_redis_flush_requeued_from_postgres);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_worker_sigterm_finishes_current_job);
    suite_add_tcase(s, tc);

    tc = tcase_create("getjob");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_worker_getjob_routed_by_owner);
    suite_add_tcase(s, tc);

    tc = tcase_create("schedule");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_worker_schedule_two_replicas_one_job_per_period);
    tcase_add_test(tc, test_worker_schedule_missed_daily_run_caught_up_once);
    tcase_add_test(tc, test_worker_schedule_bad_config_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("ops_jobs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_worker_fi_eod_reprice);
    tcase_add_test(tc, test_worker_pf_idempotency_cleanup);
    tcase_add_test(tc, test_worker_dead_consumers_removed);
    tcase_add_test(tc, test_worker_enqueue_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (getenv("TEST_PG_HOST") == NULL || getenv("FSR_WORKER_BIN") == NULL) {
        fprintf(stderr, "worker_test: run me through with_deps.sh --pg (see meson.build)\n");
        return 77;
    }
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "worker_test: redis-server not found; skipping\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_tmp, sizeof(g_tmp), "%s/fsr-worker-test.XXXXXX", env_or("TMPDIR", "/tmp"));
    if (mkdtemp(g_tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    chmod(g_tmp, 0755); /* redis runs as another user and keeps its files below */
    SRunner *sr = srunner_create(worker_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[512];
    if (failed == 0 && getenv("WORKER_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "worker_test: cannot remove %s\n", g_tmp);
    } else {
        fprintf(stderr, "worker_test: logs kept in %s\n", g_tmp);
    }
    return failed == 0 ? 0 : 1;
}
