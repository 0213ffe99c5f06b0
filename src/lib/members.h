/* libtether internal: the members of a JSON object, each value kept as the text JSON.stringify writes for
 * it (json_codec.h), in order: a session's data (session_data.h). Text already in that form is split
 * without being parsed into a tree; the object's text is the members' texts put together. */
#ifndef TETHER_MEMBERS_H
#define TETHER_MEMBERS_H

#include <stddef.h>

#include "util.h"

typedef struct tether__member {
  char *key;   /* the name, unescaped (owned) */
  char *text;  /* the value as JSON.stringify writes it (owned) */
  size_t len;  /* of text */
  char *value; /* a string value unescaped, made on first read (owned, or NULL) */
  int packed;  /* text lives in key's allocation, after the name (split from a stored session): not freed */
} tether__member;

typedef struct tether__sdata {
  tether__member *m; /* in order */
  size_t n, cap;
} tether__sdata;

/* Takes an object's text apart into d (emptied first). Text already in JSON.stringify's form is split
 * as it is; anything else goes through jansson (flags: JSON_REJECT_DUPLICATES or 0) and is printed back
 * member by member. TETHER_EINVAL (message set) when it is not a JSON object. */
int tether__sdata_parse(tether__sdata *d, const char *p, size_t n, size_t flags);
/* tether__sdata_text of d without its members lead1 and lead2, made from the text p[0..n) that d was split
 * from, as it is (no member written again), when that text was in JSON.stringify's form and starts with lead1
 * (and lead2, if d has it); otherwise NULL. A stored session's data: its cookie comes first. */
char *tether__sdata_text_after(const tether__sdata *d, const char *p, size_t n, const char *lead1, const char *lead2);
/* The member called key, or NULL. */
tether__member *tether__sdata_find(const tether__sdata *d, const char *key);
/* Sets key (taken) to text (taken; not a packed member's), in place when the key exists, else at the end. */
void tether__sdata_set_owned(tether__sdata *d, char *key, char *text, size_t len);
/* Sets key to the value text (copied), in place when the key exists, else at the end. */
void tether__sdata_set(tether__sdata *d, const char *key, const char *text, size_t len);
/* Removes key: 0, or TETHER_ENOTFOUND. */
int tether__sdata_del(tether__sdata *d, const char *key);
void tether__sdata_clear(tether__sdata *d);
/* Bytes the members take written (more when a name needs escapes). */
size_t tether__sdata_size(const tether__sdata *d);
/* Appends ",\"key\":value" for each member, skipping the names skip1 and skip2 (NULL: none). */
void tether__sdata_write_members(const tether__sdata *d, tether__buf *b, const char *skip1, const char *skip2);
/* The whole data as a JSON object (malloc'd): "{}" when empty. */
char *tether__sdata_text(const tether__sdata *d);

#endif
