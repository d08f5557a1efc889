/* SPDX-License-Identifier: MIT */
/* Allocation helpers and the per-call arena. */
#ifndef FSR_MEM_H
#define FSR_MEM_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * Allocate or abort.  Out of memory is not a recoverable condition for a service: the
 * process logs and aborts, and the orchestrator restarts it (STYLE §4).  Sizes read off
 * the wire must be checked against configured limits *before* calling these.
 */
void *fsr_xmalloc(size_t n);
void *fsr_xcalloc(size_t nmemb, size_t size);
void *fsr_xrealloc(void *p, size_t n);
char *fsr_xstrdup(const char *s);
char *fsr_xstrndup(const char *s, size_t n);

/* Recover the struct that embeds |ptr| as its member |member|. */
#define FSR_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define FSR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A bump allocator freed all at once.  Every call gets one: the decoded request, the
 * response and any formatted strings live in it and die with the call.
 *
 * Embed |fsr_arena| anywhere, zero it or call fsr_arena_init(), and release everything
 * with fsr_arena_dispose().  The first block is allocated lazily, so an arena costs
 * nothing until used.
 */
typedef struct fsr_arena_block fsr_arena_block;
typedef struct fsr_arena {
    fsr_arena_block *_head;
    size_t _used;           /* bytes used in _head */
    size_t _cap;            /* capacity of _head */
    size_t _total;          /* total bytes handed out, for limits and metrics */
    ProtobufCAllocator _pb; /* allocator view for protobuf-c */
} fsr_arena;

/* Initialises |a| as an empty arena. */
void fsr_arena_init(fsr_arena *a);

/* Frees every block of |a|; |a| may be reused afterwards as if just initialised. */
void fsr_arena_dispose(fsr_arena *a);

/* Returns |n| bytes aligned to 16, never NULL (aborts on OOM).  Zeroed memory: fsr_arena_calloc. */
void *fsr_arena_alloc(fsr_arena *a, size_t n);
void *fsr_arena_calloc(fsr_arena *a, size_t n);
char *fsr_arena_strdup(fsr_arena *a, const char *s);
char *fsr_arena_strndup(fsr_arena *a, const char *s, size_t n);
char *fsr_arena_printf(fsr_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Returns a ProtobufCAllocator that allocates from |a| and whose free is a no-op.  Use it
 * for protobuf_c_message_unpack(); never call *__free_unpacked on such messages.
 */
ProtobufCAllocator *fsr_arena_pb_allocator(fsr_arena *a);

/* Total bytes handed out by |a| since init/dispose. */
size_t fsr_arena_total(const fsr_arena *a);

#endif /* FSR_MEM_H */
