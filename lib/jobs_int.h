/* SPDX-License-Identifier: MIT */
/* lib/jobs.c's hooks for the rest of lib/ (never included outside lib/). */
#ifndef FSR_JOBS_INT_H
#define FSR_JOBS_INT_H

/*
 * Frees the calling loop thread's GetJob forwarding channels, if any (pending forwarded
 * calls complete with CANCELLED first).  fsr_app_main's thread teardown calls it while the
 * loop still exists.
 */
void fsr__jobs_thread_dispose(void);

#endif /* FSR_JOBS_INT_H */
