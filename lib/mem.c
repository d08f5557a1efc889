/* SPDX-License-Identifier: MIT */
/* Allocate-or-abort helpers and the per-call bump arena. */
#include "fsr/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"

static void oom(size_t n)
{
    FSR_ERROR("out of memory allocating %zu bytes", n);
    abort();
}

void *fsr_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *fsr_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *fsr_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *fsr_xstrdup(const char *s)
{
    return fsr_xstrndup(s, strlen(s));
}

char *fsr_xstrndup(const char *s, size_t n)
{
    char *p = fsr_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/*
 * Blocks form a singly linked list, newest first.  Each block's payload follows its header;
 * the header is padded to 16 bytes so payload alignment holds.  Small requests share the
 * head block; a request larger than a quarter of the standard block gets a block of its
 * own, linked *behind* the head so the head's free space is not wasted.
 */
struct fsr_arena_block {
    fsr_arena_block *next;
    size_t cap;
};

#define ARENA_ALIGN 16
#define ARENA_HDR   ((sizeof(fsr_arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))
#define ARENA_BLOCK 4096
#define ALIGN_UP(n) (((n) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static void *pb_alloc(void *data, size_t size)
{
    return fsr_arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p; /* freed with the arena */
}

void fsr_arena_init(fsr_arena *a)
{
    memset(a, 0, sizeof(*a));
}

void fsr_arena_dispose(fsr_arena *a)
{
    fsr_arena_block *b = a->_head;
    while (b != NULL) {
        fsr_arena_block *next = b->next;
        free(b);
        b = next;
    }
    fsr_arena_init(a);
}

void *fsr_arena_alloc(fsr_arena *a, size_t n)
{
    n = ALIGN_UP(n ? n : 1);
    a->_total += n;
    if (a->_head != NULL && a->_cap - a->_used >= n) {
        void *p = (char *)a->_head + ARENA_HDR + a->_used;
        a->_used += n;
        return p;
    }
    if (n > ARENA_BLOCK / 4 && a->_head != NULL) {
        fsr_arena_block *b = fsr_xmalloc(ARENA_HDR + n);
        b->cap = n;
        b->next = a->_head->next;
        a->_head->next = b;
        return (char *)b + ARENA_HDR;
    }
    size_t cap = n > ARENA_BLOCK - ARENA_HDR ? n : ARENA_BLOCK - ARENA_HDR;
    fsr_arena_block *b = fsr_xmalloc(ARENA_HDR + cap);
    b->cap = cap;
    b->next = a->_head;
    a->_head = b;
    a->_cap = cap;
    a->_used = n;
    return (char *)b + ARENA_HDR;
}

void *fsr_arena_calloc(fsr_arena *a, size_t n)
{
    void *p = fsr_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *fsr_arena_strndup(fsr_arena *a, const char *s, size_t n)
{
    char *p = fsr_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *fsr_arena_strdup(fsr_arena *a, const char *s)
{
    return fsr_arena_strndup(a, s, strlen(s));
}

char *fsr_arena_printf(fsr_arena *a, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return fsr_arena_strdup(a, "");
    if ((size_t)n < sizeof(small))
        return fsr_arena_strndup(a, small, (size_t)n);
    char *p = fsr_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

ProtobufCAllocator *fsr_arena_pb_allocator(fsr_arena *a)
{
    a->_pb.alloc = pb_alloc;
    a->_pb.free = pb_free;
    a->_pb.allocator_data = a;
    return &a->_pb;
}

size_t fsr_arena_total(const fsr_arena *a)
{
    return a->_total;
}
