/* SPDX-License-Identifier: MIT */
/*
 * worker_bench: throughput of fsr-worker on no-op jobs (docs/PERFORMANCE.md, "Worker").
 *
 *   worker_bench FSR_WORKER_BIN     (run by test/bench/worker_bench.sh, which starts
 *                                    PostgreSQL and Redis and sets the variables below)
 *
 * Environment: BENCH_PG_HOST, BENCH_PG_PORT (a cluster with role fsr and superuser
 * postgres), BENCH_REDIS_PORT, BENCH_JOBS (default 100000), BENCH_THREADS (worker
 * THREADS, default 1), BENCH_BATCH and BENCH_PREFETCH (WORKER_BATCH, WORKER_PREFETCH;
 * default: the worker's), BENCH_MODE ("backlog", "live" or "both", default both),
 * BENCH_TYPE ("noop", default; "test.effect": every job also inserts a row in its
 * transaction, the path of a job with database effects).
 *
 * backlog  N noop jobs are enqueued (through fsr_job_enqueue(): a row in Postgres, then
 *          XADD) with no worker running; then one worker starts and drains them.
 *          Throughput = N / (last finished_at - first started_at), both read from the
 *          jobs table, so start-up is excluded and every job is counted only once it is
 *          SUCCEEDED in Postgres and acknowledged in Redis.
 * live     The worker runs first; N jobs are enqueued as fast as the enqueuer goes and
 *          processed as they arrive.  Reported: enqueue rate, end-to-end throughput
 *          (first created_at to last finished_at) and per-job latency percentiles
 *          (finished_at - created_at).
 *
 * enqueue  Only the enqueueing, into an empty queue with no worker: N jobs, then the rate.
 *
 * BENCH_ENQ_BATCH (default 0): 0 enqueues each job with fsr_job_enqueue() (512 in flight
 * on 8 connections); N > 0 uses fsr_job_enqueue_batch() with N jobs per call (8 calls in
 * flight): one INSERT ... unnest of N rows and one pipeline of N XADDs each.
 *
 * Also reported: the worker's CPU time per job (utime + stime from /proc).
 */
#include "fsr/jobs.h"
#include "fsr/loop.h"
#include "fsr/pg.h"
#include "fsr/redis.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "worker_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ---- database ------------------------------------------------------------------------- */

static char g_conninfo[512];

static PGresult *sql(const char *conninfo, const char *q)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die("%s: %s", q, PQerrorMessage(c));
    PQfinish(c);
    return r;
}

static double sql_double(const char *q)
{
    PGresult *r = sql(g_conninfo, q);
    double v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atof(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static void db_reset(const char *name)
{
    char admin[512], q[256];
    snprintf(admin, sizeof(admin), "host=%s port=%s dbname=postgres user=postgres",
             env_or("BENCH_PG_HOST", "/tmp"), env_or("BENCH_PG_PORT", "5432"));
    snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s", name);
    PQclear(sql(admin, q));
    snprintf(q, sizeof(q), "CREATE DATABASE %s OWNER fsr", name);
    PQclear(sql(admin, q));
    snprintf(g_conninfo, sizeof(g_conninfo), "host=%s port=%s dbname=%s user=fsr",
             env_or("BENCH_PG_HOST", "/tmp"), env_or("BENCH_PG_PORT", "5432"), name);
    FILE *f = fopen(WB_JOBS_SQL, "rb");
    if (f == NULL)
        die("cannot open %s", WB_JOBS_SQL);
    static char schema[1 << 16];
    size_t n = fread(schema, 1, sizeof(schema) - 1, f);
    fclose(f);
    schema[n] = '\0';
    PQclear(sql(g_conninfo, schema));
    PQclear(sql(g_conninfo, "CREATE TABLE test_job_effects (job_id uuid NOT NULL,"
                            " attempt integer NOT NULL, worker text NOT NULL,"
                            " at timestamptz NOT NULL DEFAULT now())"));
}

/* ---- Redis ---------------------------------------------------------------------------- */

static long long redis_int(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", atoi(env_or("BENCH_REDIS_PORT", "6379")));
    if (c == NULL || c->err)
        die("redis connect");
    redisReply *r = redisCommand(c, cmd);
    long long v = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static void redis_cmd(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", atoi(env_or("BENCH_REDIS_PORT", "6379")));
    if (c == NULL || c->err)
        die("redis connect");
    freeReplyObject(redisCommand(c, cmd));
    redisFree(c);
}

/* ---- enqueueing ----------------------------------------------------------------------- */

typedef struct enq {
    fsr_loop *loop;
    fsr_pg_pool *pg;
    fsr_redis *redis;
    fsr_job_spec spec;
    int n, next, outstanding, done, failed, unpublished;
    int batch;                 /* BENCH_ENQ_BATCH: jobs per fsr_job_enqueue_batch() call */
    fsr_job_spec *batch_specs; /* |batch| copies of |spec| */
} enq;

static void pump(enq *e);

static void on_enqueued(const fsr_job_info *info, int status, void *arg)
{
    enq *e = arg;
    e->outstanding--;
    if (status == 0) {
        e->done++;
        e->unpublished += !info->published;
    } else {
        e->failed++;
    }
    pump(e);
}

static void on_batch_enqueued(const fsr_job_info *infos, size_t n, int status, void *arg)
{
    enq *e = arg;
    e->outstanding--;
    if (status == 0) {
        e->done += (int)n;
        for (size_t i = 0; i < n; i++)
            e->unpublished += !infos[i].published;
    } else {
        e->failed++;
    }
    pump(e);
}

static void pump(enq *e)
{
    while (e->batch > 0 && e->outstanding < 8 && e->next < e->n) {
        int k = e->n - e->next < e->batch ? e->n - e->next : e->batch;
        if (fsr_job_enqueue_batch(e->pg, e->redis, FSR_JOB_QUEUE_EQUITY, e->batch_specs, (size_t)k,
                                  on_batch_enqueued, e) != 0)
            die("fsr_job_enqueue_batch failed");
        e->outstanding++;
        e->next += k;
    }
    while (e->batch == 0 && e->outstanding < 512 && e->next < e->n) {
        if (fsr_job_enqueue(e->pg, e->redis, FSR_JOB_QUEUE_EQUITY, &e->spec, on_enqueued, e) != 0)
            die("fsr_job_enqueue failed");
        e->outstanding++;
        e->next++;
    }
    if (e->outstanding == 0 && e->next == e->n)
        fsr_loop_stop(e->loop);
}

/* Enqueues |n| noop jobs; returns the seconds it took. */
static double enqueue(int n)
{
    enq e = { .n = n, .spec = { .type = env_or("BENCH_TYPE", "noop") } };
    e.batch = atoi(env_or("BENCH_ENQ_BATCH", "0"));
    if (e.batch < 0 || e.batch > FSR_JOB_BATCH_MAX)
        die("BENCH_ENQ_BATCH: 0..%d", FSR_JOB_BATCH_MAX);
    if (e.batch > 0) {
        e.batch_specs = calloc((size_t)e.batch, sizeof(*e.batch_specs));
        for (int i = 0; i < e.batch; i++)
            e.batch_specs[i] = e.spec;
    }
    if (fsr_loop_new(&e.loop) != 0)
        die("loop");
    fsr_pg_config pc = { .conninfo = g_conninfo, .size = 8, .queue_max = 4096 };
    if (fsr_pg_pool_new(e.loop, &pc, &e.pg) != 0)
        die("pool");
    if (fsr_redis_new(e.loop, "127.0.0.1", atoi(env_or("BENCH_REDIS_PORT", "6379")), NULL,
                      &e.redis) != 0)
        die("redis");
    double t0 = now_s();
    pump(&e);
    fsr_loop_run(e.loop);
    double dt = now_s() - t0;
    fsr_redis_free(e.redis);
    fsr_pg_pool_free(e.pg);
    fsr_loop_free(e.loop);
    free(e.batch_specs);
    if (e.failed != 0 || e.done != n || e.unpublished != 0)
        die("enqueue: %d done, %d failed, %d unpublished", e.done, e.failed, e.unpublished);
    return dt;
}

/* ---- the worker ----------------------------------------------------------------------- */

static char g_tmp[256];

static pid_t worker_start(const char *bin, int *port)
{
    char port_file[300], log[300];
    snprintf(port_file, sizeof(port_file), "%s/worker.port", g_tmp);
    snprintf(log, sizeof(log), "%s/worker.log", g_tmp);
    unlink(port_file);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        char buf[600];
        snprintf(buf, sizeof(buf), "%s", env_or("BENCH_PG_HOST", "/tmp"));
        setenv("EQUITY_DB_HOST", buf, 1);
        setenv("EQUITY_DB_PORT", env_or("BENCH_PG_PORT", "5432"), 1);
        const char *db = strstr(g_conninfo, "dbname=") + 7;
        snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(db, " "), db);
        setenv("EQUITY_DB_NAME", buf, 1);
        setenv("EQUITY_DB_USER", "fsr", 1);
        setenv("EQUITY_REDIS_HOST", "127.0.0.1", 1);
        setenv("EQUITY_REDIS_PORT", env_or("BENCH_REDIS_PORT", "6379"), 1);
        setenv("WORKER_PORT", "0", 1);
        setenv("PORT_FILE", port_file, 1);
        setenv("THREADS", env_or("BENCH_THREADS", "1"), 1);
        setenv("LOG_LEVEL", "warn", 1);
        if (getenv("BENCH_BATCH") != NULL)
            setenv("WORKER_BATCH", getenv("BENCH_BATCH"), 1);
        if (getenv("BENCH_PREFETCH") != NULL)
            setenv("WORKER_PREFETCH", getenv("BENCH_PREFETCH"), 1);
        setenv("WORKER_TEST_JOBS", "1", 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        execl(bin, bin, "--queue", "equity", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) {
        FILE *f = fopen(port_file, "r");
        if (f != NULL) {
            int n = fscanf(f, "%d", port);
            fclose(f);
            if (n == 1 && *port > 0)
                return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("worker exited; see %s", log);
        usleep(10000);
    }
    die("worker did not start; see %s", log);
}

/* utime + stime of |pid| in seconds. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* Fields after the command: state is 3, utime 14, stime 15. */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void worker_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("worker did not exit cleanly (status %d)", status);
}

/* Waits until every one of |n| jobs is SUCCEEDED and the stream is empty. */
static void wait_done(int n, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (redis_int("XLEN jobs:equity") == 0 && redis_int("XPENDING jobs:equity workers") <= 0)
            break;
        usleep(20000);
    }
    char q[128];
    snprintf(q, sizeof(q), "SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'");
    double ok = sql_double(q);
    if ((int)ok != n)
        die("%d of %d jobs SUCCEEDED", (int)ok, n);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: worker_bench FSR_WORKER_BIN (see test/bench/worker_bench.sh)");
    const char *bin = argv[1];
    int n = atoi(env_or("BENCH_JOBS", "100000"));
    const char *mode = env_or("BENCH_MODE", "both");
    snprintf(g_tmp, sizeof(g_tmp), "%s/fsr-worker-bench.XXXXXX", env_or("TMPDIR", "/tmp"));
    if (mkdtemp(g_tmp) == NULL)
        die("mkdtemp: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    printf("jobs: %d %s, worker THREADS=%s%s%s%s%s\n", n, env_or("BENCH_TYPE", "noop"),
           env_or("BENCH_THREADS", "1"), getenv("BENCH_BATCH") ? ", WORKER_BATCH=" : "",
           env_or("BENCH_BATCH", ""), getenv("BENCH_PREFETCH") ? ", WORKER_PREFETCH=" : "",
           env_or("BENCH_PREFETCH", ""));

    const char *how = getenv("BENCH_ENQ_BATCH") != NULL && atoi(getenv("BENCH_ENQ_BATCH")) > 0
                          ? "fsr_job_enqueue_batch"
                          : "fsr_job_enqueue";
    if (strcmp(mode, "enqueue") == 0) {
        db_reset("worker_bench");
        redis_cmd("FLUSHALL");
        double enq_s = enqueue(n);
        printf("enqueue: %d jobs in %.2f s (%.0f jobs/s through %s%s%s)\n", n, enq_s, n / enq_s,
               how, getenv("BENCH_ENQ_BATCH") != NULL ? ", BENCH_ENQ_BATCH=" : "",
               env_or("BENCH_ENQ_BATCH", ""));
    }

    if (strcmp(mode, "backlog") == 0 || strcmp(mode, "both") == 0) {
        db_reset("worker_bench");
        redis_cmd("FLUSHALL");
        double enq_s = enqueue(n);
        printf("backlog: enqueued %d jobs in %.2f s (%.0f jobs/s through %s)\n", n, enq_s,
               n / enq_s, how);
        int port;
        double t0 = now_s();
        pid_t pid = worker_start(bin, &port);
        wait_done(n, 600);
        double wall = now_s() - t0;
        double cpu = cpu_s(pid);
        double span = sql_double("SELECT extract(epoch FROM max(finished_at) - min(started_at))"
                                 " FROM jobs");
        worker_stop(pid);
        printf("backlog: drained %d jobs: %.0f jobs/s (first start to last finish %.3f s;"
               " %.2f s wall incl. worker start-up)\n",
               n, n / span, span, wall);
        printf("backlog: worker CPU %.2f s = %.1f us/job\n", cpu, cpu / n * 1e6);
    }

    if (strcmp(mode, "live") == 0 || strcmp(mode, "both") == 0) {
        db_reset("worker_bench");
        redis_cmd("FLUSHALL");
        int port;
        pid_t pid = worker_start(bin, &port);
        usleep(300000); /* consumer group created, first XREADGROUP blocked */
        double enq_s = enqueue(n);
        wait_done(n, 600);
        double cpu = cpu_s(pid);
        double span = sql_double("SELECT extract(epoch FROM max(finished_at) - min(created_at))"
                                 " FROM jobs");
        double p50 = sql_double("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY"
                                " extract(epoch FROM finished_at - created_at)) FROM jobs");
        double p99 = sql_double("SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY"
                                " extract(epoch FROM finished_at - created_at)) FROM jobs");
        worker_stop(pid);
        printf("live: enqueued %d jobs in %.2f s (%.0f jobs/s); end to end %.0f jobs/s"
               " (first enqueue to last finish %.3f s)\n",
               n, enq_s, n / enq_s, n / span, span);
        printf("live: latency enqueue -> SUCCEEDED p50 %.1f ms, p99 %.1f ms; worker CPU %.2f s"
               " = %.1f us/job\n",
               p50 * 1e3, p99 * 1e3, cpu, cpu / n * 1e6);
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "worker_bench: cannot remove %s\n", g_tmp);
    return 0;
}
