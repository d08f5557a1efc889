/* SPDX-License-Identifier: MIT */
/*
 * The harness of the service integration tests (services_test.c, equity_test.c): start a
 * service binary against with_deps.sh's PostgreSQL and Redis, wait for its port, call it
 * over gRPC with the project's client, check errors, query the database.
 */
#ifndef FSR_SVC_HARNESS_H
#define FSR_SVC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/status.h"

typedef struct svc_def {
    const char *name;    /* "equity": database, log and port-file name */
    const char *bin_env; /* env var holding the binary's path */
    const char *prefix;  /* env prefix of its DB and Redis */
    bool shared_redis;
} svc_def;

typedef struct proc {
    pid_t pid;
    int port;
    char log[320];
    char port_file[320];
} proc;

typedef struct rpc {
    bool done;
    fsr_code code;
    char message[1024];
    char field[256];        /* the first google.rpc.BadRequest field violation, or "" */
    ProtobufCMessage *resp; /* a malloc()ed copy of the reply, or NULL */
} rpc;

extern const svc_def EQUITY;
extern const svc_def FIXED_INCOME;
extern const svc_def PORTFOLIO;

extern char g_tmp[256];
extern proc g_eq, g_fi, g_pf;
extern fsr_loop *g_loop;
extern fsr_channel *g_ch;
extern int g_ch_port;

void sleep_ms(int ms);
char *mut(const char *s);
const char *env_or(const char *name, const char *def);
pid_t spawn(const char *bin, char *const argv[], char *const env[], const char *log);
int wait_port(pid_t pid, const char *port_file, int timeout_ms);
size_t deps_env(const svc_def *d, char **env, size_t n);
void svc_start(const svc_def *d, const char *tag, proc *p);
int proc_stop(proc *p);
void start_equity(void);
void stop_equity(void);
void start_fixed_income(void);
void stop_fixed_income(void);
void start_portfolio(void);
void stop_portfolio(void);
int http_get_status(int port, const char *path);
int wait_healthy(int port, int timeout_ms);
fsr_channel *channel_to(int port);
void details_field(const void *bytes, size_t len, char *out, size_t cap);
void on_rpc_done(const fsr_result *res, void *arg);
rpc call(int port, const char *path, const void *req, const ProtobufCMessageDescriptor *out,
         const char *client_id);
void rpc_dispose(rpc *r);
void expect_invalid(rpc *r, const char *field, const char *what);
void expect_code(rpc *r, fsr_code code, const char *what);
bool same_message(const ProtobufCMessage *a, const ProtobufCMessage *b);
bool is_uuid(const char *s);
long db_long(const char *db, const char *sql);
const char *pid_uuid(char buf[37], unsigned n);

#define REQUIRE_UP(p) ck_assert_msg((p).port > 0, "service did not start; see %s", (p).log)

#endif /* FSR_SVC_HARNESS_H */
