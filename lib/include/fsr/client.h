/* SPDX-License-Identifier: MIT */
/*
 * The gRPC client: one HTTP/2 connection per channel (reused by every call, many concurrent
 * streams), per-call deadlines sent as grpc-timeout, metadata, retry with jittered backoff
 * on UNAVAILABLE for idempotent methods.  Runs on an fsr_loop; a channel belongs to the
 * loop (thread) that created it.
 */
#ifndef FSR_CLIENT_H
#define FSR_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "fsr/loop.h"
#include "fsr/metadata.h"
#include "fsr/status.h"

struct fsr_call;
typedef struct fsr_channel fsr_channel;

typedef struct fsr_channel_opts {
    uint32_t connect_timeout_ms; /* 0 = 2000 */
    size_t max_message_size;     /* 0 = 4 MiB */
    int max_attempts;            /* for idempotent calls on UNAVAILABLE; 0 = 3 */
    uint32_t backoff_base_ms;    /* first retry delay, doubled each attempt, full jitter; 0 = 50 */
} fsr_channel_opts;

/*
 * Creates a channel to |target| ("host:port").  Connects lazily on first call, reconnects
 * after failures.  |opts| may be NULL.  Returns 0, or FSR_E_CONFIG for a bad target.
 */
int fsr_channel_new(fsr_loop *loop, const char *target, const fsr_channel_opts *opts,
                    fsr_channel **out);

/* Closes the connection; pending calls complete with CANCELLED first.  NULL is a no-op. */
void fsr_channel_free(fsr_channel *ch);

typedef struct fsr_call_opts {
    int64_t timeout_ms;     /* 0 = none (or the parent's remaining time) */
    const fsr_md *metadata; /* custom request metadata */
    size_t n_metadata;
    struct fsr_call *parent; /* server call being served: deadline and request id propagate */
    bool idempotent;         /* retry on UNAVAILABLE (generated stubs set it from the proto) */
} fsr_call_opts;

/*
 * The result of a call.  Everything in it (message, strings, metadata) is valid only during
 * the callback, allocated in the call's arena; copy what you keep (STYLE §5).
 */
typedef struct fsr_result {
    fsr_status status;
    ProtobufCMessage *response; /* unary: the reply, or NULL unless status.code == OK */
    const fsr_md *headers;      /* response header metadata */
    size_t n_headers;
    const fsr_md *trailers; /* trailer metadata (grpc-* removed) */
    size_t n_trailers;
    const void *status_details; /* grpc-status-details-bin bytes, or NULL */
    size_t status_details_len;
} fsr_result;

typedef void (*fsr_unary_cb)(const fsr_result *res, void *arg);

/*
 * Starts a unary call of |path| ("/pkg.Service/Method").  The callback runs exactly once, on
 * the channel's loop, never from inside this function.  Returns 0, or FSR_E_TOO_LARGE if
 * the request exceeds the max message size (callback not run).
 */
int fsr_channel_unary(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, const fsr_call_opts *opts,
                      fsr_unary_cb cb, void *arg);

/* Server-streaming: |on_msg| per message (valid during the callback), then |on_done| once. */
typedef void (*fsr_stream_msg_cb)(ProtobufCMessage *msg, void *arg);
int fsr_channel_server_stream(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc,
                              const fsr_call_opts *opts, fsr_stream_msg_cb on_msg,
                              fsr_unary_cb on_done, void *arg);

/*
 * Blocking unary call: runs the channel's loop until the call completes (use only on a
 * thread whose loop is not otherwise running, e.g. a CLI tool).  On return *|status| is set;
 * on OK *|resp| is a message allocated with protobuf-c's default allocator that the caller
 * frees with protobuf_c_message_free_unpacked(*resp, NULL).  Status strings are copied into
 * |status_buf|.  Returns 0 when a status was received, or a negative error.
 */
int fsr_channel_unary_blocking(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               const fsr_call_opts *opts, ProtobufCMessage **resp,
                               fsr_status *status, char *status_buf, size_t status_buf_len);

#endif /* FSR_CLIENT_H */
