# The seed's Flask configuration (docs: /work/shared/seed, "Shared session store") as a lab backend:
# Flask + Flask-Session (Debian's python3-flask, python3-flask-session 0.3.2) with SESSION_TYPE = 'redis'
# and SESSION_REDIS = Redis(...), under gunicorn, answering the routes of tether-app and of the Express app
# (tests/interop/express/app.js) with the same JSON, so that tether-lab's users drive all three alike.
#
#   gunicorn --workers 1 --threads 4 --bind 127.0.0.1:PORT --chdir tests/interop/flask \
#            --env LAB_NAME=app1 --env LAB_STORE=redis --env LAB_REDIS=redis://127.0.0.1:6379 \
#            --env LAB_SECRET=S app:app
#
# LAB_STORE=memory keeps the sessions in this process (the sticky-local strategy): Flask-Session 0.3.2 has
# no in-process store (null, redis, memcached, filesystem, mongodb, sqlalchemy), and Flask's own session is
# a signed cookie that lives in the browser, which no server's death can lose. So the memory store is a
# dict in this process behind the three calls RedisSessionInterface makes (get, setex, delete): the same
# session code, with the sessions gone when the process dies, as with express-session's MemoryStore.
#
# Routes, as tether-app (src/app/main.c) and app.js:
#   GET  /         a small HTML page
#   GET  /whoami   {"server","session_id","visits","user","cart"}; visits += 1
#   POST /login    JSON or form {"user"}: a new session id, visits and cart kept
#   POST /cart     JSON or form {"item"}: appended to the cart
#   POST /logout   ends the session
#   GET  /health   200 {"status":"ok"} when the store answers, else 503
#
# One change from the seed's configuration: Flask-Session 0.3.2 keeps the id the client sent when the store
# has no session under it (RedisSessionInterface.open_session), so a lost session comes back under the same
# id. The server then adopts an id it never issued (session fixation), and no one outside the app can tell
# a lost session from a kept one: the balancer's session_monitor compares ids. FreshIdOnMiss below issues a
# new id instead, as express-session and tether-app do.
import html
import os
import threading
import time
from uuid import uuid4

from flask import Flask, jsonify, request, session
from flask_session import Session
from flask_session.sessions import RedisSessionInterface
from redis import Redis

NAME = os.environ.get("LAB_NAME", "flask")
STORE = os.environ.get("LAB_STORE", "redis")
if STORE not in ("redis", "memory"):
    raise SystemExit("app.py: LAB_STORE takes redis or memory, got %r" % STORE)
SECRET = os.environ.get("LAB_SECRET")
if not SECRET:
    raise SystemExit("app.py: LAB_SECRET (the secret that signs the session id) is required")


class ProcessStore:
    """Sessions in this process's memory, with the part of Redis's interface Flask-Session uses."""

    def __init__(self):
        self.data = {}
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            item = self.data.get(key)
            if item is None:
                return None
            if item[1] < time.monotonic():
                del self.data[key]
                return None
            return item[0]

    def setex(self, name, time, value):  # noqa: A002 (redis-py's own argument names)
        with self.lock:
            self.data[name] = (value, time_now() + time)

    def delete(self, key):
        with self.lock:
            self.data.pop(key, None)

    def ping(self):
        return True


def time_now():
    return time.monotonic()


class FreshIdOnMiss(RedisSessionInterface):
    """A session id the store does not know is not adopted: the client gets a new one."""

    def open_session(self, app, request):
        s = super().open_session(app, request)
        # a session found empty (Flask's own "_permanent" aside) may be one the store does not have
        if s is not None and set(s.keys()) <= {"_permanent"} and request.cookies.get(app.session_cookie_name):
            if self.redis.get(self.key_prefix + s.sid) is None:
                s.sid = self._generate_sid()
        return s

    def regenerate(self, s):
        """A new id for the session s, its data kept (login: no session fixation)."""
        self.redis.delete(self.key_prefix + s.sid)
        s.sid = str(uuid4())
        s.modified = True


app = Flask(__name__)
# ---- the seed's configuration ----
app.config["SESSION_TYPE"] = "redis"
if STORE == "redis":
    app.config["SESSION_REDIS"] = Redis.from_url(
        os.environ.get("LAB_REDIS", "redis://127.0.0.1:6379"), socket_timeout=1, socket_connect_timeout=1
    )
app.config["SESSION_USE_SIGNER"] = True
app.secret_key = SECRET
# ---- end of the seed's configuration ----
app.config["SESSION_COOKIE_HTTPONLY"] = True
Session(app)
store = app.config["SESSION_REDIS"] if STORE == "redis" else ProcessStore()
app.session_interface = FreshIdOnMiss(store, "session:", use_signer=True, permanent=True)  # 0.3.2's defaults


def whoami():
    visits = session.get("visits")
    cart = session.get("cart")
    return {
        "server": NAME,
        "session_id": session.sid,
        "visits": visits if isinstance(visits, int) else 0,
        "user": session.get("user"),
        "cart": cart if isinstance(cart, list) else [],
    }


def visits_inc():
    v = session.get("visits")
    session["visits"] = (v if isinstance(v, int) else 0) + 1


def field(key):
    body = request.get_json(silent=True) if request.is_json else request.form
    v = body.get(key) if isinstance(body, dict) or hasattr(body, "get") else None
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return str(v)
    return v if isinstance(v, str) else None


def valid_text(s, limit):
    return isinstance(s, str) and 0 < len(s.encode()) <= limit and not any(ord(c) < 32 for c in s)


@app.after_request
def served_by(resp):
    resp.headers["X-Served-By"] = NAME
    resp.headers["Cache-Control"] = "no-store"
    return resp


@app.get("/health")
def health():
    try:
        store.ping()
    except Exception as e:  # the store's own error, whatever it is
        return jsonify(status="unavailable", server=NAME, reason=str(e)), 503
    return jsonify(status="ok", server=NAME, store=STORE)


@app.get("/")
def index():
    visits_inc()
    w = whoami()
    who = html.escape(w["user"]) if isinstance(w["user"], str) else "nobody"
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Tether demo: %s</title></head>\n<body>\n"
        "<p>Answered by <span id=\"server\">%s</span></p>\n<p>Visits in this session: <span id=\"visits\">%d</span>"
        "</p>\n<p>User: <span id=\"user\">%s</span></p>\n<p>Cart: <span id=\"cart\">%s</span></p>\n</body></html>\n"
        % (
            html.escape(NAME),
            html.escape(NAME),
            w["visits"],
            who,
            html.escape(", ".join(i for i in w["cart"] if isinstance(i, str)) or "empty"),
        )
    )


@app.get("/whoami")
def get_whoami():
    visits_inc()
    return jsonify(whoami())


@app.post("/login")
def login():
    user = field("user")
    if not valid_text(user, 64):
        return jsonify(error="a user name (1-64 characters) is required"), 400
    app.session_interface.regenerate(session)
    session["user"] = user
    return jsonify(whoami())


@app.post("/cart")
def cart():
    item = field("item")
    if not valid_text(item, 100):
        return jsonify(error="an item (1-100 characters) is required"), 400
    items = session.get("cart")
    items = list(items) if isinstance(items, list) else []
    if len(items) >= 100:
        return jsonify(error="the cart is full (100 items)"), 400
    items.append(item)
    session["cart"] = items
    return jsonify(whoami())


@app.post("/logout")
def logout():
    session.clear()
    return jsonify(ok=True, server=NAME)


@app.errorhandler(404)
def not_found(e):
    return jsonify(error="not found"), 404


@app.errorhandler(Exception)
def store_failure(e):
    if hasattr(e, "code") and isinstance(e.code, int):
        return jsonify(error=str(e)), e.code
    return jsonify(error="session store unavailable", detail=str(e)), 503
