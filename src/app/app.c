/* tether-app: the process-wide state, set up by main.c and read by every part. */
#include "app.h"

app the_app;
_Atomic int stopping;
