/* libtether internal: the application's data of a session, kept as its members' JSON text (session.c owns
 * it; session_data.c implements the public accessors of tether/session.h over it).
 *
 * Each member's value is held as the text JSON.stringify writes for it (json_codec.h): a stored session
 * in that form, which is what express-session and libtether store, is taken apart without being parsed
 * into a tree, members the request does not touch are written back as the bytes they came in as, and
 * express-session's modification hash is the concatenation, compared as bytes. */
#ifndef TETHER_SESSION_DATA_H
#define TETHER_SESSION_DATA_H

#include <stddef.h>

#include "tether/session.h"
#include "util.h"

typedef struct tether__member {
  char *key;   /* the name, unescaped (owned) */
  char *text;  /* the value as JSON.stringify writes it (owned) */
  size_t len;  /* of text */
  char *value; /* a string value unescaped, made on first read (owned, or NULL) */
} tether__member;

typedef struct tether__sdata {
  tether__member *m; /* in order */
  size_t n, cap;
} tether__sdata;

/* The session's data (never NULL for a loaded session), borrowed. */
tether__sdata *tether__session_data(const tether_session *s);

/* Takes an object's text apart into d (emptied first). Text already in JSON.stringify's form is split
 * as it is; anything else goes through jansson (flags: JSON_REJECT_DUPLICATES or 0) and is printed back
 * member by member. TETHER_EINVAL (message set) when it is not a JSON object. */
int tether__sdata_parse(tether__sdata *d, const char *p, size_t n, size_t flags);
/* The member called key, or NULL. */
tether__member *tether__sdata_find(const tether__sdata *d, const char *key);
/* Sets key to the value text (copied), in place when the key exists, else at the end. */
void tether__sdata_set(tether__sdata *d, const char *key, const char *text, size_t len);
/* Removes key: 0, or TETHER_ENOTFOUND. */
int tether__sdata_del(tether__sdata *d, const char *key);
void tether__sdata_clear(tether__sdata *d);
/* Appends ",\"key\":value" for each member, skipping the names skip1 and skip2 (NULL: none). */
void tether__sdata_write_members(const tether__sdata *d, tether__buf *b, const char *skip1, const char *skip2);
/* The whole data as a JSON object (malloc'd): "{}" when empty. */
char *tether__sdata_text(const tether__sdata *d);

#endif
