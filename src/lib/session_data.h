/* libtether internal: the session's data as the jansson object it is (session.c owns it; session_data.c
 * implements the public accessors of tether/session.h over it). */
#ifndef TETHER_SESSION_DATA_H
#define TETHER_SESSION_DATA_H

#include <jansson.h>

#include "tether/session.h"

/* The application's fields (never NULL for a loaded session), borrowed. */
json_t *tether__session_json(const tether_session *s);

#endif
