#!/usr/bin/env python3
"""The Grafana dashboard and the Prometheus rules query only metrics that a running balancer exports.

  metrics_exist.py TETHER_BIN BACKEND_BIN DASHBOARD_JSON RULES_YML

Checks the dashboard's JSON (it parses; every panel has a unique id, a place and queries; every query names a
data source the dashboard defines), then starts two scripted backends (tether-test-backend) and a tether in
front of them with a sticky cookie and a session_monitor, sends requests through it, reads its admin
/metrics, and fails when a metric name that the dashboard or the rules use is not in that output."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

METRIC = re.compile(r"(?<![\w:$])(tether_[A-Za-z0-9_]+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def dashboard_queries(path):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)  # fails on invalid JSON
    errors, exprs = [], []
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in dash:
            errors.append(f"{path}: no \"{key}\"")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ids = set()
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        if p.get("id") in ids:
            errors.append(f"panel {title}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            errors.append(f"panel {title}: no gridPos")
        if p.get("type") == "row":
            continue
        if not p.get("targets"):
            errors.append(f"panel {title}: no queries")
        for t in p.get("targets", []):
            ds = t.get("datasource", p.get("datasource", {})).get("uid", "")
            if ds.startswith("${") and ds[2:-1] not in variables:
                errors.append(f"panel {title}: data source {ds} is not a dashboard variable")
            if not t.get("expr"):
                errors.append(f"panel {title}: a query without expr")
            exprs.append(t.get("expr", ""))
    for v in variables.values():
        q = v.get("query")
        exprs.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    return errors, exprs


def running_metrics(tether_bin, backend_bin):
    tmp = tempfile.mkdtemp(prefix="tether-test-metrics-")
    procs = []
    try:
        backends = []
        for name in ("app1", "app2"):
            port = free_port()
            log = open(os.path.join(tmp, name + ".log"), "w")
            procs.append(subprocess.Popen([backend_bin, "--listen", f"127.0.0.1:{port}", "--name", name],
                                          stdout=log, stderr=subprocess.STDOUT))
            backends.append(port)
        listen, admin = free_port(), free_port()
        conf = os.path.join(tmp, "tether.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 2;
listen 127.0.0.1:{listen};
admin_listen 127.0.0.1:{admin};
upstream web {{
  server 127.0.0.1:{backends[0]};
  server 127.0.0.1:{backends[1]};
  sticky cookie srv_id;
  sticky_secret metrics-test-secret-0123456789;
  session_monitor connect.sid expected=/login;
}}
location / {{ proxy_pass http://web; }}
""")
        log = open(os.path.join(tmp, "tether.log"), "w")
        procs.append(subprocess.Popen([tether_bin, "-c", conf], stdout=log, stderr=subprocess.STDOUT))
        for port in backends + [listen, admin]:
            if not wait_port(port):
                sys.exit(f"port {port} did not open; logs in {tmp}")
        for i in range(40):  # traffic on both servers, some with the application's cookie
            req = urllib.request.Request(f"http://127.0.0.1:{listen}/" + ("status?503" if i % 10 == 9 else ""))
            if i % 2:
                req.add_header("Cookie", "connect.sid=s%3Aabc.sig")
            try:
                urllib.request.urlopen(req, timeout=5).read()
            except urllib.error.HTTPError:
                pass
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        procs[-1].send_signal(signal.SIGTERM)
        if procs[-1].wait(timeout=15) != 0:
            sys.exit(f"tether exited with {procs[-1].returncode}; log:\n" + open(os.path.join(tmp, "tether.log")).read())
        return text
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    tether_bin, backend_bin, dashboard, rules = sys.argv[1:]
    errors, exprs = dashboard_queries(dashboard)
    text = running_metrics(tether_bin, backend_bin)
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    # a series per server: the test's traffic reached both
    for name in ("tether_requests_total", "tether_session_presented_total", "tether_persistence_total"):
        if not any(line.startswith(name + "{") for line in text.splitlines()):
            errors.append(f"/metrics has no {name} series")
    used = {}
    for e in exprs:
        for m in METRIC.findall(e):
            used.setdefault(m, dashboard)
    with open(rules, encoding="utf-8") as f:
        for m in METRIC.findall(f.read()):
            used.setdefault(m, rules)
    if len(used) < 10:
        errors.append(f"only {len(used)} metric names found in the dashboard and the rules: is the pattern right?")
    for m, where in sorted(used.items()):
        if m not in exported:
            errors.append(f"{where} uses {m}, which the balancer does not export")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print(f"{len(used)} metric names, all exported: {', '.join(sorted(used))}")


if __name__ == "__main__":
    main()
