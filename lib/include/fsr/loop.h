/* SPDX-License-Identifier: MIT */
/* The event loop: a thin wrapper over libevent's event_base, one per thread. */
#ifndef FSR_LOOP_H
#define FSR_LOOP_H

#include <stdint.h>

struct event_base;

typedef struct fsr_loop fsr_loop;

typedef void (*fsr_loop_cb)(void *arg);

/*
 * Creates a loop owned by the calling thread.  Returns 0, or -ENOMEM.  The loop becomes
 * the thread's current loop (fsr_loop_current()).
 */
int fsr_loop_new(fsr_loop **out);

/* Frees |loop| and runs any pending deferred frees.  NULL is a no-op. */
void fsr_loop_free(fsr_loop *loop);

/* The libevent base, for registering fds, timers, hiredis' adapter and evhttp. */
struct event_base *fsr_loop_base(fsr_loop *loop);

/* Runs until fsr_loop_stop() is called.  Returns 0, or -1 on a libevent failure. */
int fsr_loop_run(fsr_loop *loop);

/* Makes fsr_loop_run() return after the current iteration.  Thread-safe. */
void fsr_loop_stop(fsr_loop *loop);

/*
 * Runs |fn|(|arg|) on |loop|'s thread soon.  The only way to cross threads: a locked queue
 * plus an eventfd wakeup.  Safe from any thread, including the loop's own.
 */
void fsr_loop_post(fsr_loop *loop, fsr_loop_cb fn, void *arg);

/*
 * Runs |fn|(|arg|) on the loop's thread after the current callbacks unwind: the safe point
 * to free an object whose callback may still be on the stack (STYLE §5).
 */
void fsr_loop_defer(fsr_loop *loop, fsr_loop_cb fn, void *arg);

/* The calling thread's loop, or NULL. */
fsr_loop *fsr_loop_current(void);

/* Monotonic clock in microseconds and wall clock in microseconds since the epoch. */
int64_t fsr_now_us(void);
int64_t fsr_wall_us(void);

#endif /* FSR_LOOP_H */
