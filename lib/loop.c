/* SPDX-License-Identifier: MIT */
/* fsr_loop: libevent's event_base plus a cross-thread post queue and deferred callbacks. */
#include "fsr/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fsr/mem.h"

typedef struct task {
    struct task *next;
    fsr_loop_cb fn;
    void *arg;
} task;

struct fsr_loop {
    struct event_base *base;
    /* Posted from other threads: guarded by |lock|, drained on the eventfd wakeup. */
    pthread_mutex_t lock;
    task *posted_head, *posted_tail;
    int efd;
    struct event *wake_ev;
    /*
     * Deferred on this thread: run from a zero-timeout "active" event, i.e. after every
     * callback currently on the stack has returned -- the safe point to free objects.
     */
    task *deferred_head, *deferred_tail;
    struct event *defer_ev;
};

static __thread fsr_loop *current_loop;

static void run_list(task *t)
{
    while (t != NULL) {
        task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    fsr_loop *loop = arg;
    uint64_t v;
    (void)what;
    while (read(fd, &v, sizeof(v)) > 0) {
    }
    pthread_mutex_lock(&loop->lock);
    task *t = loop->posted_head;
    loop->posted_head = loop->posted_tail = NULL;
    pthread_mutex_unlock(&loop->lock);
    run_list(t);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    fsr_loop *loop = arg;
    (void)fd;
    (void)what;
    /* Tasks deferred while these run go to a fresh list and a new activation. */
    task *t = loop->deferred_head;
    loop->deferred_head = loop->deferred_tail = NULL;
    run_list(t);
}

int fsr_loop_new(fsr_loop **out)
{
    fsr_loop *loop = fsr_xcalloc(1, sizeof(*loop));
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        goto fail_cfg;
    /* One loop per thread: libevent's own locking is pure overhead here. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    loop->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (loop->base == NULL)
        goto fail_cfg;
    loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->efd < 0)
        goto fail_efd;
    pthread_mutex_init(&loop->lock, NULL);
    loop->wake_ev = event_new(loop->base, loop->efd, EV_READ | EV_PERSIST, on_wake, loop);
    loop->defer_ev = event_new(loop->base, -1, 0, on_deferred, loop);
    event_add(loop->wake_ev, NULL);
    current_loop = loop;
    *out = loop;
    return 0;

fail_efd:
    event_base_free(loop->base);
fail_cfg:
    free(loop);
    return -ENOMEM;
}

void fsr_loop_free(fsr_loop *loop)
{
    if (loop == NULL)
        return;
    on_deferred(-1, 0, loop);
    on_wake(loop->efd, 0, loop);
    event_free(loop->wake_ev);
    event_free(loop->defer_ev);
    close(loop->efd);
    pthread_mutex_destroy(&loop->lock);
    event_base_free(loop->base);
    if (current_loop == loop)
        current_loop = NULL;
    free(loop);
}

struct event_base *fsr_loop_base(fsr_loop *loop)
{
    return loop->base;
}

int fsr_loop_run(fsr_loop *loop)
{
    current_loop = loop;
    return event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0 ? -1 : 0;
}

static void on_stop(void *arg)
{
    fsr_loop *loop = arg;
    event_base_loopbreak(loop->base);
}

void fsr_loop_stop(fsr_loop *loop)
{
    fsr_loop_post(loop, on_stop, loop);
}

void fsr_loop_post(fsr_loop *loop, fsr_loop_cb fn, void *arg)
{
    task *t = fsr_xmalloc(sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&loop->lock);
    int was_empty = loop->posted_head == NULL;
    if (loop->posted_tail != NULL)
        loop->posted_tail->next = t;
    else
        loop->posted_head = t;
    loop->posted_tail = t;
    pthread_mutex_unlock(&loop->lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t rv = write(loop->efd, &one, sizeof(one));
        (void)rv; /* EAGAIN means a wakeup is already pending */
    }
}

void fsr_loop_defer(fsr_loop *loop, fsr_loop_cb fn, void *arg)
{
    task *t = fsr_xmalloc(sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    if (loop->deferred_tail != NULL)
        loop->deferred_tail->next = t;
    else
        loop->deferred_head = t;
    loop->deferred_tail = t;
    event_active(loop->defer_ev, 0, 0);
}

fsr_loop *fsr_loop_current(void)
{
    return current_loop;
}

int64_t fsr_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fsr_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
