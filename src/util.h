/* Small parsers shared by the config and the CLI: durations and sizes. */
#ifndef FULCRUM_UTIL_H
#define FULCRUM_UTIL_H

#include "common.h"

/* "250ms", "5s", "2m", "1h" -> milliseconds. A bare number is refused so
 * that "30" can never silently mean 30 ms. Returns 0 or -EINVAL/-ERANGE. */
int parse_duration_ms(const char *s, uint64_t *out);

/* "512", "16k", "1m", "2g" (powers of 1024, case-insensitive) -> bytes.
 * Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* Whole non-negative decimal number, no sign or spaces. 0 or -EINVAL/-ERANGE. */
int parse_uint(const char *s, uint64_t *out);

/* Format milliseconds the way parse_duration_ms reads them ("1500ms", "2m").
 * Writes into buf (at least 24 bytes) and returns it. */
char *fmt_duration(uint64_t ms, char *buf, size_t len);

/* Read a whole file of at most `max` bytes into a malloc'd buffer (NUL
 * terminated, not counted in *len). Returns NULL with errno set when it
 * cannot be read, or EFBIG when it is larger than max. */
char *read_whole_file(const char *path, size_t max, size_t *len);

/* Host name matching for routes and certificates: "*.example.com" matches
 * one or more labels in front of example.com (not example.com itself);
 * anything else matches itself. Case is ignored; pat is NUL-terminated,
 * name has len bytes. */
bool name_matches(const char *pat, const char *name, size_t len);

#endif
