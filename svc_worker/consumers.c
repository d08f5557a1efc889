/* SPDX-License-Identifier: MIT */
/*
 * Dead consumers: every replica thread reads as consumer "<host>-<pid>-<thread>", so each
 * pod restart leaves its consumers behind in the group, forever listed by XINFO CONSUMERS.
 * Every WORKER_CONSUMER_GC_INTERVAL_MS thread 0 removes those with no pending entries that
 * have been idle longer than WORKER_CONSUMER_IDLE_MS (XGROUP DELCONSUMER).
 *
 * Idle time alone does not tell a dead consumer from a live one without work: Redis 7.0
 * resets it only when a read delivers entries (an empty XREADGROUP or XAUTOCLAIM leaves it
 * growing).  So every live process also beats a heartbeat: thread 0 writes its consumer
 * name prefix "<host>-<pid>-" into the hash jobs:<queue>:consumers:alive with an expiry
 * time three rounds ahead, every round.  A consumer whose process has a live heartbeat is
 * never removed, whatever its idle time; this process's own consumers are never candidates.
 *
 * The check and the deletion run in one Lua script, so they are atomic: a consumer cannot
 * take an entry between the check and its deletion (DELCONSUMER drops a consumer's
 * pending entries, and those would then wait for the requeue sweep).  Entries pending on a
 * dead consumer are never dropped here: XAUTOCLAIM moves them to a live one first, and the
 * consumer goes at a later round.  Should a live consumer be removed anyway (its heartbeat
 * lost in a Redis flush), nothing is lost: it has nothing pending, and its next delivery
 * creates it again.  The script also drops expired heartbeats.
 */
#include "ops.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "fsr/log.h"
#include "fsr/metrics.h"
#include "fsr/status.h"

/*
 * KEYS[1] the stream, KEYS[2] the heartbeat hash (process prefix -> expiry, ms).  ARGV:
 * group, idle threshold (ms), this process's prefix, now (ms), this process's heartbeat
 * expiry.  Beats our heartbeat, removes the dead consumers and returns their names.  XINFO's
 * reply reaches Lua in RESP2 form: a flat [field, value, ...] array per consumer.  No group
 * yet (NOGROUP): nothing to remove.
 */
static const char gc_lua[] =
    "local limit, own, now = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])\n"
    "redis.call('HSET', KEYS[2], own, ARGV[5])\n"
    "local hb = redis.call('HGETALL', KEYS[2])\n"
    "local alive = {}\n"
    "for i = 1, #hb, 2 do\n"
    "  if tonumber(hb[i + 1]) > now then alive[hb[i]] = true\n"
    "  else redis.call('HDEL', KEYS[2], hb[i]) end\n"
    "end\n"
    "local removed = {}\n"
    "local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])\n"
    "if type(cs) ~= 'table' or cs['err'] then return removed end\n"
    "for _, c in ipairs(cs) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  local p = string.match(f['name'], '^(.*%-)') or f['name']\n"
    "  if f['pending'] == 0 and f['idle'] > limit and p ~= own and not alive[p] then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])\n"
    "    removed[#removed + 1] = f['name']\n"
    "  end\n"
    "end\n"
    "return removed\n";

static fsr_app_ctx *g_ctx;
static char g_own[96];        /* "<host>-<pid>-": every consumer of this process */
static char g_alive_key[128]; /* jobs:<queue>:consumers:alive */
static struct event *g_timer;
static fsr_series *g_removed;
static bool g_running, g_stopping, g_closing;

static void arm(uint32_t ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(g_timer, &tv);
}

static void on_collected(const struct redisReply *reply, int status, void *arg)
{
    (void)arg;
    g_running = false;
    if (g_closing)
        return;
    if (status == 0 && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *n = reply->element[i];
            FSR_INFO("removed dead consumer %s from group %s of %s (idle over %u ms, nothing "
                     "pending)",
                     n->type == REDIS_REPLY_STRING ? n->str : "?", WK_GROUP, wk_cfg.queue->stream,
                     wk_ops_cfg.consumer_idle_ms);
        }
        fsr_counter_add(g_removed, (double)reply->elements);
    } else if (status != 0 && status != FSR_E_CLOSED) {
        FSR_WARN("dead consumer cleanup failed (%s%s%s)", fsr_strerror(status),
                 reply != NULL && reply->str != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
    }
    if (!g_stopping)
        arm(wk_ops_cfg.consumer_gc_ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (g_stopping || g_running)
        return;
    char idle[16], now[24], until[24];
    int64_t now_ms = fsr_wall_us() / 1000;
    snprintf(idle, sizeof(idle), "%u", wk_ops_cfg.consumer_idle_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(until, sizeof(until), "%lld", (long long)(now_ms + 3LL * wk_ops_cfg.consumer_gc_ms));
    if (g_ctx->redis == NULL ||
        fsr_redis_command(g_ctx->redis, on_collected, NULL, "EVAL %s 2 %s %s %s %s %s %s %s",
                          gc_lua, wk_cfg.queue->stream, g_alive_key, WK_GROUP, idle, g_own, now,
                          until) != 0) {
        arm(wk_ops_cfg.consumer_gc_ms);
        return;
    }
    g_running = true;
}

void wk_consumers_start(fsr_app_ctx *ctx, const char *consumer)
{
    if (wk_ops_cfg.consumer_idle_ms == 0)
        return; /* WORKER_CONSUMER_IDLE_MS=0: keep every consumer */
    g_ctx = ctx;
    snprintf(g_alive_key, sizeof(g_alive_key), "%s:consumers:alive", wk_cfg.queue->stream);
    /* "<host>-<pid>-0" -> "<host>-<pid>-" */
    snprintf(g_own, sizeof(g_own), "%s", consumer);
    char *dash = strrchr(g_own, '-');
    if (dash != NULL)
        dash[1] = '\0';
    static const char *const l[] = { "queue" };
    const char *v[] = { wk_cfg.queue->name };
    g_removed = fsr_metric_labels(
        fsr_metric_counter("worker_consumers_removed",
                           "Dead consumers (idle, nothing pending) removed from the group.", l, 1),
        v);
    g_timer = evtimer_new(fsr_loop_base(ctx->loop), on_timer, NULL);
    arm(1); /* the first round (and heartbeat) right away */
}

void wk_consumers_stop(void)
{
    g_stopping = true;
    if (g_timer != NULL)
        event_del(g_timer);
}

void wk_consumers_close(void)
{
    g_stopping = true;
    g_closing = true;
    if (g_timer != NULL)
        event_free(g_timer);
    g_timer = NULL;
}
