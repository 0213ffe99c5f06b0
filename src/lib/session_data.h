/* libtether internal: the application's data of a session, kept as its members' JSON text (session.c owns
 * it; session_data.c implements the public accessors of tether/session.h over it).
 *
 * Each member's value is held as the text JSON.stringify writes for it (json_codec.h): a stored session
 * in that form, which is what express-session and libtether store, is taken apart without being parsed
 * into a tree, members the request does not touch are written back as the bytes they came in as, and
 * express-session's modification hash is the concatenation, compared as bytes. */
#ifndef TETHER_SESSION_DATA_H
#define TETHER_SESSION_DATA_H

#include "members.h"
#include "tether/session.h"

/* The session's data (never NULL for a loaded session), borrowed. */
tether__sdata *tether__session_data(const tether_session *s);

#endif
