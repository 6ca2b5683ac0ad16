/* Project-wide conventions: return codes, small helpers. See
 * docs/internals/conventions.md. */
#ifndef FULCRUM_COMMON_H
#define FULCRUM_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>

#define FULCRUM_VERSION "0.1.0"

/* Success is 0 or a positive count; failure is a negative errno value.
 * FL_AGAIN is the one "try again later" code of non-blocking paths. */
#define FL_OK 0
#define FL_AGAIN (-EAGAIN)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Counters written by one worker and read by any thread: a relaxed load and
 * store (no locked instruction on x86) keeps reads untorn and race-free. */
typedef _Atomic uint64_t counter_t;
static inline void ctr_add(counter_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline void ctr_sub(counter_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
			      memory_order_relaxed);
}
static inline uint64_t ctr_get(counter_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Allocation that never returns NULL: out of memory at this layer is fatal. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);

#endif
