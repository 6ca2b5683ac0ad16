/* The start of a TLS connection: a strict, incremental, zero-copy parser of
 * the ClientHello, so that TLS passthrough can route on the server name
 * (SNI) without terminating TLS.
 *
 * The parser keeps no state between calls: it is given all the bytes the
 * client has sent so far and walks them from the start, judging each field
 * as soon as its bytes are there. The ClientHello may be split over several
 * handshake records; the parser follows the record boundaries in place and
 * copies only the server name and the first ALPN name into struct
 * tls_hello. Every length is checked against its container, so what it
 * accepts is what a backend's TLS stack will read the same way.
 *
 * The server name is one host_name of 1..255 bytes in 0x21..0x7e without
 * empty labels; sni holds it lower-cased, without the trailing dot, so a
 * routing rule compares it with strcmp. */
#ifndef FULCRUM_TLS_HELLO_H
#define FULCRUM_TLS_HELLO_H

#include "common.h"

#define TLS_HELLO_NAME_MAX 255

struct tls_hello {
	char sni[TLS_HELLO_NAME_MAX + 1]; /* host_name from server_name, lower-cased, NUL-terminated; "" when absent */
	size_t sni_len;
	uint16_t version;                  /* highest version offered: 0x0303 for 1.2, 0x0304 when supported_versions lists 1.3 */
	bool has_alpn;
	char alpn_first[64];               /* first ALPN protocol name offered, "" when none (truncate-safe) */
	size_t wait_len;                   /* after FL_AGAIN: see tls_hello_parse; else 0 */
};

/* The most bytes a caller keeps to find the end of a ClientHello: one full
 * record's worth, record headers included. */
#define TLS_HELLO_READ_MAX 16384

/* Parse the first `len` bytes a client sent. Returns the number of bytes that
 * hold the whole ClientHello (all TLS records it spans) when complete,
 * FL_AGAIN when more bytes are needed (and fewer than TLS_HELLO_READ_MAX have
 * been given), or a negative errno: -EPROTO when the bytes are not a TLS
 * handshake record (for example plain HTTP), -EBADMSG when it is malformed,
 * -EMSGSIZE when the ClientHello is longer than TLS_HELLO_READ_MAX.
 * Nothing in `out` points into p. `out` is filled only on a positive return;
 * on any other return it is reset to empty (no name, version 0; only
 * wait_len is set, after FL_AGAIN), so a half-parsed name can never be
 * routed on.
 *
 * After FL_AGAIN, out->wait_len (> len) is the fewest bytes worth parsing
 * again: inside a record's payload that is the record's end (or
 * TLS_HELLO_READ_MAX), in a record header the next byte. A shorter input
 * cannot complete the hello, and a refusal it could show is shown at
 * wait_len too, so a caller that waits for wait_len bytes walks each record
 * once however the client splits its writes. */
int tls_hello_parse(const uint8_t *p, size_t len, struct tls_hello *out);

/* A short text for a negative return of tls_hello_parse, for logs (static
 * storage). */
const char *tls_hello_strerror(int rc);

#endif
