/* HTTP/1.1 message heads and chunked bodies: a strict, zero-copy parser
 * (RFC 9110 / RFC 9112). This is the security boundary between clients and
 * backends: every rule below has a test, and a request it refuses never
 * reaches a backend.
 *
 * Heads are parsed once the whole head is in the buffer: h1_parse_* scan for
 * the blank line incrementally (remembering where they stopped in
 * struct h1_scan), so feeding one byte at a time costs O(n) overall, then
 * parse the head in one pass. Nothing is copied: names, values, method and
 * target point into the caller's buffer, which must stay unchanged while the
 * struct h1_msg is used. */
#ifndef FULCRUM_H1_H
#define FULCRUM_H1_H

#include "common.h"

#define H1_NEED_MORE 0          /* return value: the head is not complete */
#define H1_MAX_FIELDS_HARD 256  /* capacity of struct h1_msg */

struct h1_limits {
	uint32_t max_request_line;  /* default 8 KiB: beyond it 414 */
	uint32_t max_head;          /* default 32 KiB: beyond it 431 */
	uint32_t max_fields;        /* default 100 (<= H1_MAX_FIELDS_HARD): beyond it 431 */
};

/* Defaults as above. */
extern const struct h1_limits h1_default_limits;

struct h1_field {
	const char *name;
	const char *value;          /* leading/trailing OWS removed */
	uint32_t name_len;
	uint32_t value_len;
};

enum h1_body {
	H1_BODY_NONE = 0,           /* no body (no CL/TE on a request; HEAD/204/304/1xx responses) */
	H1_BODY_LENGTH,             /* content_length bytes */
	H1_BODY_CHUNKED,            /* chunked transfer coding, last */
	H1_BODY_CLOSE,              /* response body until the server closes */
};

/* Flags derived from the fields while parsing. */
enum {
	H1_F_CONN_CLOSE = 1 << 0,       /* Connection: close (or HTTP/1.0 without keep-alive) */
	H1_F_CONN_KEEPALIVE = 1 << 1,   /* Connection: keep-alive */
	H1_F_CONN_UPGRADE = 1 << 2,     /* Connection lists "upgrade" */
	H1_F_UPGRADE_WS = 1 << 3,       /* Upgrade: websocket */
	H1_F_EXPECT_CONTINUE = 1 << 4,  /* Expect: 100-continue */
	H1_F_HAS_HOST = 1 << 5,
	H1_F_ABSOLUTE_FORM = 1 << 6,    /* request-target in absolute-form */
	H1_F_WS_KEY = 1 << 7,           /* Sec-WebSocket-Key present */
	H1_F_WS_VERSION = 1 << 8,       /* Sec-WebSocket-Version present */
	H1_F_UNDERSCORE = 1 << 9,       /* a field name contains '_' */
};

struct h1_msg {
	/* request line */
	const char *method;
	const char *target;         /* as sent */
	const char *path;           /* origin-form path (for absolute-form: the part after the authority) */
	const char *authority;      /* Host value, or the absolute-form authority (which replaces Host) */
	uint32_t method_len, target_len, path_len, authority_len;
	/* status line */
	int status;
	const char *reason;
	uint32_t reason_len;
	/* both */
	int version;                /* 10 or 11 */
	uint32_t head_len;          /* bytes of the whole head including the blank line */
	uint32_t flags;             /* H1_F_* */
	enum h1_body body;
	uint64_t content_length;
	/* Connection lists these field names as hop-by-hop: the proxy removes
	 * them when forwarding, except the framing fields and those it adds. */
	uint32_t nfields;
	struct h1_field fields[H1_MAX_FIELDS_HARD];
	uint8_t hop[H1_MAX_FIELDS_HARD];  /* 1 = hop-by-hop field, drop when forwarding */
};

/* Incremental scan state; zero it before the first call for a message. */
struct h1_scan {
	uint32_t pos;               /* bytes already scanned for the end of the head */
};

/* Parse a request head at buf[0..len). Returns head_len (> 0) when the head
 * is complete and valid, H1_NEED_MORE, or -STATUS (a negative HTTP status:
 * -400, -414, -431, -501, -505) when the request must be refused. On error
 * *why (if not NULL) points at a static reason for the log. */
int h1_parse_request(const char *buf, size_t len, struct h1_scan *scan,
		     const struct h1_limits *lim, struct h1_msg *m, const char **why);

/* Parse a response head. `req_method` is the method of the request it
 * answers (HEAD changes the framing), may be NULL. Returns head_len,
 * H1_NEED_MORE or -502 (an invalid response) with *why set. */
int h1_parse_response(const char *buf, size_t len, struct h1_scan *scan,
		      const struct h1_limits *lim, const char *req_method,
		      uint32_t req_method_len, struct h1_msg *m, const char **why);

/* Chunked body validator for pass-through: it consumes the chunked framing
 * and data as they come and says how many bytes belong to the body, so the
 * proxy forwards exactly those bytes. */
struct h1_chunked {
	int state;
	uint64_t remaining;         /* bytes left in the current chunk's data */
	uint32_t line_len;          /* length of the size/trailer line so far */
	uint32_t trailer_bytes;
	uint64_t data_bytes;        /* chunk data seen so far (framing excluded) */
	bool done;                  /* the last chunk and trailers were consumed */
};

/* Feed bytes; returns how many of them belong to the chunked body (<= len;
 * less than len only when the body ended inside buf), or -400 on invalid
 * framing with *why set. Zero-initialise *c before the first call. Chunk
 * extensions are accepted and left in place; trailer fields are passed
 * through inside the body, never merged into the head. Limits: a size or
 * extension line of at most 4 KiB, trailers of at most 32 KiB. */
int64_t h1_chunked_feed(struct h1_chunked *c, const char *buf, size_t len, const char **why);

/* The same validation, for a client that cannot take chunked coding (an
 * HTTP/1.0 client): each call consumes either framing only (up to the next
 * chunk's data, the body's end or len; *data = 0) or chunk data only (*data
 * = the return value). The caller forwards the data and drops the framing,
 * trailers included. Returns the bytes consumed or -400 as above. */
int64_t h1_chunked_decode(struct h1_chunked *c, const char *buf, size_t len, size_t *data,
			  const char **why);

/* Case-insensitive field lookup; returns the index or -1. */
int h1_find_field(const struct h1_msg *m, const char *name, size_t name_len, int start);

/* The parser's character rules, for text fulcrum itself puts into messages
 * (the config checker uses them): a field name or method is a non-empty
 * token; a field value has no CTL but HTAB; a request target (path) has no
 * CTL, SP or '#'. */
bool h1_is_token(const char *s);
bool h1_is_field_value(const char *s);
bool h1_is_target(const char *s);

/* Normalises the path of an origin-form target, p[0..*len) (no query), in
 * place, as RFC 3986 6.2.2 does, so that routes match what servers read:
 * escapes of unreserved characters are decoded ("%61" -> "a", "%2E" -> ".")
 * and the hex digits of the others upper-cased ("%2f" -> "%2F"); runs of
 * '/' become one; "." and ".." segments are removed. Nothing is written when
 * nothing changes. Returns 0 with the new length in *len, or -400 with *why
 * for a malformed escape or a ".." that climbs above the root. */
int h1_normalize_path(char *p, size_t *len, const char **why);

/* Whether p[0..n) holds an escaped '/' or '\\' (%2F or %5C, any case). */
bool h1_has_escaped_slash(const char *p, size_t n);

/* Status text for the responses fulcrum generates ("Bad Request"). */
const char *h1_status_text(int status);

#endif
