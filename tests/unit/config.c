/* The balancer's configuration reader: both shapes load, every mistake is an error with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../src/balancer/config.c"
#include "../../src/balancer/request/route.h"

static tether__config cf;
static char err[4096];

/* The previous configuration is released first: a parse starts from nothing, and its lists would leak. */
static int parse(const char *text) {
  tether__config_release(&cf);
  return tether__config_parse("t.conf", text, strlen(text), &cf, err, sizeof(err));
}

static int load(const char *path) {
  tether__config_release(&cf);
  return tether__config_load(path, &cf, err, sizeof(err));
}

static void test_issue_example(void **state) {
  (void)state;
  const char *text = "worker_processes 1;\n"
                     "listen 127.0.0.1:8080;\n"
                     "admin_listen 127.0.0.1:8081;\n"
                     "upstream backend {\n"
                     "    server 127.0.0.1:9001 weight=2 max_fails=3 fail_timeout=10s;\n"
                     "    server 127.0.0.1:9002;\n"
                     "    server 127.0.0.1:9003 backup;\n"
                     "    least_conn;\n"
                     "    health_check uri=/health interval=1s fails=2 passes=2;\n"
                     "    keepalive 64;\n"
                     "}\n"
                     "location / { proxy_pass http://backend; }\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.workers, 1);
  assert_int_equal(cf.nupstreams, 1);
  tether__cf_upstream *u = &cf.upstreams[0];
  assert_int_equal(u->nservers, 3);
  assert_int_equal(u->servers[0].weight, 2);
  assert_int_equal(u->servers[0].max_fails, 3);
  assert_int_equal(u->servers[0].fail_timeout_ms, 10000);
  assert_true(u->servers[2].backup);
  assert_int_equal(u->balance, TETHER__BALANCE_LEAST_CONN);
  assert_true(u->health.enabled);
  assert_string_equal(u->health.uri, "/health");
  assert_int_equal(u->health.interval_ms, 1000);
  assert_int_equal(u->health.fails, 2);
  assert_int_equal(u->keepalive, 64);
  assert_int_equal(cf.nlocations, 1);
  assert_int_equal(cf.locations[0].upstream, 0);
  assert_string_equal(cf.admin.text, "127.0.0.1:8081");
}

static void test_nginx_shape(void **state) {
  (void)state;
  const char *text = "# the seed's block, pasted\n"
                     "events { worker_connections 1024; }\n"
                     "http {\n"
                     "  upstream backend {\n    ip_hash_is_not_here_yet_so_no_directive_here;\n  }\n"
                     "}\n";
  assert_int_equal(parse(text), -1);
  assert_non_null(strstr(err, "t.conf:5: unknown directive \"ip_hash_is_not_here_yet_so_no_directive_here\""));
  text = "http {\n"
         "  upstream backend { server 127.0.0.1:9001; server 127.0.0.1:9002; }\n"
         "  server {\n"
         "    listen 8080;\n"
         "    server_name example.com;\n"
         "    location / { proxy_pass http://backend; proxy_set_header Host $host; }\n"
         "    location = /ping { return 200 \"pong\"; }\n"
         "  }\n"
         "}\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.nlocations, 2);
  assert_true(cf.locations[1].exact);
  assert_int_equal(cf.locations[1].ret.status, 200);
  assert_int_equal(cf.locations[1].ret.nvalue, 1);
  assert_string_equal(cf.locations[1].ret.value[0].text, "pong");
}

/* add_header at each level with nginx's inheritance (a level with any add_header drops the outer level's);
 * return with text, with a redirect's URL, a bare URL, and at the server level. */
static void test_add_header_and_return(void **state) {
  (void)state;
  const char *text = "add_header X-Http 1;\n"
                     "server {\n  listen 8080;\n"
                     "  add_header Strict-Transport-Security \"max-age=63072000\" always;\n"
                     "  add_header X-Host $host;\n"
                     "  upstream b { server 127.0.0.1:1; }\n"
                     "  location / { proxy_pass http://b; }\n"
                     "  location /own { add_header X-Own yes; proxy_pass http://b; }\n"
                     "  location /go { return 301 https://$host$request_uri; }\n"
                     "  location /found { return https://example.com/x; return 200 never; }\n"
                     "}\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.vservers[0].add_headers.nadd, 2); /* the server's list, not the http level's */
  assert_string_equal(cf.vservers[0].add_headers.add[0].name, "Strict-Transport-Security");
  assert_true(cf.vservers[0].add_headers.add[0].always);
  assert_string_equal(cf.vservers[0].add_headers.add[0].value[0].text, "max-age=63072000");
  assert_false(cf.vservers[0].add_headers.add[1].always);
  assert_int_equal(cf.vservers[0].add_headers.add[1].value[0].type, TETHER__KEY_HOST);
  assert_false(cf.locations[0].add_headers.defined);
  assert_int_equal(cf.locations[1].add_headers.nadd, 1);
  assert_int_equal(cf.locations[2].ret.status, 301);
  assert_int_equal(cf.locations[2].ret.nvalue, 3);
  assert_string_equal(cf.locations[2].ret.value[0].text, "https://");
  assert_int_equal(cf.locations[2].ret.value[1].type, TETHER__KEY_HOST);
  assert_int_equal(cf.locations[2].ret.value[2].type, TETHER__KEY_REQUEST_URI);
  assert_int_equal(cf.locations[3].ret.status, 302); /* the first return is the one that runs */
  assert_string_equal(cf.locations[3].ret.value[0].text, "https://example.com/x");
  assert_int_equal(cf.vservers[0].ret.status, 0);
  /* the http level's list when the server has none; a server's return needs no location */
  text = "listen 8080;\nhttp { add_header X-Http 1; }\nreturn 308 https://example.com$request_uri;\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.vservers[0].add_headers.nadd, 1);
  assert_string_equal(cf.vservers[0].add_headers.add[0].name, "X-Http");
  assert_int_equal(cf.vservers[0].ret.status, 308);
  assert_int_equal(cf.nlocations, 0);
}

static void test_errors_name_the_line(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *want;
  } cases[] = {
      {"listen 8080;\nfoo bar;\n", "t.conf:2: unknown directive \"foo\""},
      {"listen 8080;\nupstream b {\n server 127.0.0.1:1 weight=0;\n}\nlocation / { proxy_pass http://b; }\n",
       "t.conf:3: \"server\": weight must be an integer from 1 to 1000"},
      {"listen 8080;\nupstream b {\n server nowhere.example:80;\n}\n", "t.conf:3: invalid server address"},
      {"listen 8080;\nupstream b { server 127.0.0.1:1 fail_timeout=ten; }\n",
       "t.conf:2: \"server\": invalid time \"ten\""},
      {"listen 8080;\nlocation / { proxy_pass http://missing; }\n",
       "t.conf:2: proxy_pass: no upstream named \"missing\""},
      {"listen 99999;\n", "t.conf:1: invalid address \"99999\""},
      {"listen 8080\nupstream b { server 127.0.0.1:1; }\n", "t.conf:1: \"listen\" takes no block: a \";\" is missing"},
      {"listen 8080;\nupstream b {\n server 127.0.0.1:1;\n", "t.conf:2: upstream \"b\": missing \"}\""},
      {"listen 8080;\nclient_max_body_size 1q;\n", "t.conf:2: \"client_max_body_size\": invalid size \"1q\""},
      {"listen 8080;\nupstream b { server 127.0.0.1:1 backup; }\nlocation / { proxy_pass http://b; }\n",
       "has only backup servers"},
      {"listen 8080;\nupstream b { }\n", "upstream \"b\" has no server"},
      {"upstream b { server 127.0.0.1:1; }\n", "no \"listen\" address"},
      {"listen 8080;\nworker_processes 1 2;\n", "t.conf:2: \"worker_processes\" takes 1 argument"},
      {"listen 8080;\nupstream b { server 127.0.0.1:1; health_check uri=nope; }\n", "uri must start with '/'"},
      {"listen 8080;\nset_real_ip_from 10.0.0.0/33;\n", "t.conf:2: invalid address or CIDR"},
      {"listen 8080;\nlocation ~ \\.php$ { return 404; }\n", "regex locations are not supported"},
      {"listen 8080;\nx \"unterminated;\n", "t.conf:2: unterminated quoted string"},
      {"listen 8080;\n}\n", "t.conf:2: unexpected \"}\""},
      {"listen 8080;\nupstream b { server 127.0.0.1:1; }\nlocation / { proxy_pass https://b; proxy_ssl_verify on; }\n",
       "t.conf:3: no proxy_ssl_trusted_certificate for proxy_ssl_verify"},
      {"listen 8080;\nupstream b { server 127.0.0.1:1; }\nlocation /x { proxy_pass https://b; }\n"
       "location /y { proxy_pass http://b; }\n",
       "t.conf:4: location \"/y\" proxies to upstream \"b\" with http, location \"/x\" (line 3) with https"},
      {"listen 8080;\nproxy_ssl_verify_depth -1;\n", "t.conf:2: "},
      {"listen 8080;\nproxy_ssl_crl /crl.pem;\n", "t.conf:2: \"proxy_ssl_crl\" is not supported"},
      {"listen 8080;\nlocation / { proxy_pass ftp://b; }\n",
       "t.conf:2: proxy_pass must be http://UPSTREAM or https://"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (parse(cases[i].text) != -1) fail_msg("case %zu accepted: %s", i, cases[i].text);
    if (strstr(err, cases[i].want) == NULL) fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, err);
  }
}

static void test_several_errors_reported(void **state) {
  (void)state;
  assert_int_equal(parse("listen 8080;\nfoo;\nbar;\nupstream b { server 127.0.0.1:1 frob; }\n"), -1);
  assert_non_null(strstr(err, "t.conf:2:"));
  assert_non_null(strstr(err, "t.conf:3:"));
  assert_non_null(strstr(err, "t.conf:4: unknown server parameter \"frob\""));
}

/* proxy_ssl_*: each directive a location does not give comes from the outer level (nginx's merge), the upstream
 * proxied to with https takes the merged settings, proxy_ssl_name defaults to the upstream's name; plain
 * upstreams stay plain. */
static void test_proxy_ssl_inheritance(void **state) {
  (void)state;
  const char *text = "listen 8080;\n"
                     "proxy_ssl_verify on;\n"
                     "proxy_ssl_trusted_certificate /ca.pem;\n"
                     "proxy_ssl_server_name on;\n"
                     "upstream a { server 127.0.0.1:1; }\n"
                     "upstream b { server 127.0.0.1:2; }\n"
                     "upstream c { server 127.0.0.1:3; }\n"
                     "location /a { proxy_pass https://a; proxy_ssl_verify_depth 3; proxy_ssl_protocols TLSv1.3; }\n"
                     "location /a2 { proxy_ssl_protocols TLSv1.3; proxy_pass https://a; proxy_ssl_verify_depth 3; }\n"
                     "location /b { proxy_pass https://b; proxy_ssl_verify off; proxy_ssl_name b.example:8443;\n"
                     "  proxy_ssl_session_reuse off; }\n"
                     "location /c { proxy_pass http://c; }\n";
  if (parse(text) != 0) fprintf(stderr, "%s", err);
  assert_int_equal(parse(text), 0);
  const tether__cf_upstream *a = &cf.upstreams[0], *b = &cf.upstreams[1], *c = &cf.upstreams[2];
  assert_true(a->https);
  assert_int_equal(a->https_line, 8);
  assert_true(a->ssl.verify);
  assert_int_equal(a->ssl.verify_depth, 3);
  assert_string_equal(a->ssl.trusted, "/ca.pem");
  assert_int_equal(a->ssl.trusted_line, 3);
  assert_true(a->ssl.server_name);
  assert_string_equal(a->ssl.name, "a"); /* $proxy_host */
  assert_int_equal(a->ssl.protocols, TETHER__TLS_V13);
  assert_true(a->ssl.session_reuse);
  assert_true(b->https);
  assert_false(b->ssl.verify);
  assert_int_equal(b->ssl.verify_depth, 1);
  assert_string_equal(b->ssl.name, "b.example");
  assert_false(b->ssl.session_reuse);
  assert_int_equal(b->ssl.protocols, TETHER__TLS_V12 | TETHER__TLS_V13);
  assert_false(c->https);
  assert_null(a->tls_ctx); /* built when loaded, not parsed */
  tether__config_release(&cf);
}

static void test_values(void **state) {
  (void)state;
  assert_int_equal(tether__parse_size("16k"), 16384);
  assert_int_equal(tether__parse_size("1m"), 1048576);
  assert_int_equal(tether__parse_size("512"), 512);
  assert_int_equal(tether__parse_size("-1"), -1);
  assert_int_equal(tether__parse_size("1kb"), -1);
  assert_int_equal(tether__parse_time_ms("10s"), 10000);
  assert_int_equal(tether__parse_time_ms("500ms"), 500);
  assert_int_equal(tether__parse_time_ms("2m"), 120000);
  assert_int_equal(tether__parse_time_ms("1h"), 3600000);
  assert_int_equal(tether__parse_time_ms("3"), 3000);
  assert_int_equal(tether__parse_time_ms("3x"), -1);
  tether__addr a;
  assert_int_equal(tether__addr_parse("127.0.0.1:80", &a), 0);
  assert_int_equal(tether__addr_parse("[::1]:80", &a), 0);
  assert_int_equal(tether__addr_parse("8080", &a), 0);
  assert_int_equal(tether__addr_parse("host:80", &a), -1);
  assert_int_equal(tether__addr_parse("127.0.0.1:0", &a), -1);
  tether__cidr c, probe;
  assert_int_equal(tether__cidr_parse("127.0.0.0/8", &c), 0);
  assert_int_equal(tether__cidr_parse("127.5.6.7", &probe), 0);
  assert_true(tether__cidr_match(&c, (struct sockaddr *)&probe.net));
  assert_int_equal(tether__cidr_parse("10.1.2.3", &probe), 0);
  assert_false(tether__cidr_match(&c, (struct sockaddr *)&probe.net));
  assert_int_equal(tether__cidr_parse("::1/128", &c), 0);
  assert_false(tether__cidr_match(&c, (struct sockaddr *)&probe.net));
}

/* route= names a server for the keyed sticky cookie value, cookie= is the value itself; sticky_key_file is
 * only recorded by the parser (the file is read when a configuration is loaded, never when parsed). */
static void test_sticky_route_and_key_file(void **state) {
  (void)state;
  const char *text = "listen 127.0.0.1:8080;\n"
                     "http {\n"
                     "  sticky_key_file /nonexistent/tether-unit/sticky.key;\n"
                     "  upstream app {\n"
                     "    sticky cookie srv_id;\n"
                     "    server 127.0.0.1:9001 route=web1;\n"
                     "    server 127.0.0.1:9002 cookie=b;\n"
                     "    server 127.0.0.1:9003;\n"
                     "  }\n"
                     "}\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_string_equal(cf.sticky_key_file, "/nonexistent/tether-unit/sticky.key");
  assert_int_equal(cf.sticky_key_file_line, 3);
  assert_int_equal(access("/nonexistent/tether-unit", F_OK), -1);
  const tether__cf_upstream *u = &cf.upstreams[0];
  assert_string_equal(u->servers[0].route, "web1");
  assert_string_equal(u->servers[0].cookie_id, "");
  assert_string_equal(u->servers[1].cookie_id, "b");
  assert_string_equal(u->servers[1].route, "");
  assert_false(u->sticky_key_set);
  tether__config_release(&cf);

  assert_int_equal(parse("listen 8080;\nupstream a {\n server 127.0.0.1:1 route=x;\n server 127.0.0.1:2 route=x;\n}\n"),
                   -1);
  assert_non_null(strstr(err, "t.conf:2: upstream \"a\": servers 127.0.0.1:1 and 127.0.0.1:2 have the same route"));
  assert_int_equal(parse("listen 8080;\nupstream a {\n server 127.0.0.1:1 route=a/b;\n}\n"), -1);
  assert_non_null(strstr(err, "t.conf:3: server 127.0.0.1:1: route must be"));
  assert_int_equal(parse("listen 8080;\nsticky_key_file;\nupstream a { server 127.0.0.1:1; }\n"), -1);
  assert_non_null(strstr(err, "t.conf:2: \"sticky_key_file\" takes 1 argument"));
}

/* admin_listen: a bare port is loopback; anything else off loopback needs admin_auth_token env:NAME, read at
 * load and refused (with file:line, never quoted) when missing, empty or short. worker_rlimit_nofile. */
static void test_admin_and_limits(void **state) {
  (void)state;
  const char *up = "upstream b { server 127.0.0.1:1; }\n";
  char text[512];
  snprintf(text, sizeof(text), "listen 8080;\nadmin_listen 8081;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_string_equal(cf.admin.text, "127.0.0.1:8081");
  assert_int_equal(ntohl(((struct sockaddr_in *)&cf.admin.sa)->sin_addr.s_addr), INADDR_LOOPBACK);
  assert_int_equal(ntohs(((struct sockaddr_in *)&cf.admin.sa)->sin_port), 8081);
  assert_int_equal(ntohl(((struct sockaddr_in *)&cf.listen[0].sa)->sin_addr.s_addr), INADDR_ANY); /* unchanged */
  assert_string_equal(cf.admin_token, "");
  assert_int_equal(cf.rlimit_nofile, 0);
  snprintf(text, sizeof(text), "listen 8080;\nadmin_listen [::1]:8081;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  snprintf(text, sizeof(text), "listen 8080;\nadmin_listen 127.0.0.2:8081;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);

  setenv("UNIT_ADMIN_TOKEN", "0123456789abcdef", 1);
  setenv("UNIT_ADMIN_SHORT", "0123456789abcde", 1);
  setenv("UNIT_ADMIN_EMPTY", "", 1);
  unsetenv("UNIT_ADMIN_UNSET");
  snprintf(text, sizeof(text),
           "listen 8080;\nadmin_listen 0.0.0.0:8081;\nadmin_auth_token env:UNIT_ADMIN_TOKEN;\n"
           "worker_rlimit_nofile 65536;\n%s",
           up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_string_equal(cf.admin_token, "0123456789abcdef");
  assert_int_equal(cf.rlimit_nofile, 65536);
  tether__config_release(&cf);
  assert_string_equal(cf.admin_token, ""); /* wiped */

  static const struct {
    const char *conf;
    const char *want;
  } cases[] = {
      {"listen 8080;\nadmin_listen 0.0.0.0:8081;\n", "t.conf:2: admin_listen 0.0.0.0:8081 is not a loopback address"},
      {"listen 8080;\nadmin_listen *:8081;\n", "t.conf:2: admin_listen *:8081 is not a loopback address"},
      {"listen 8080;\nadmin_listen [::]:8081;\n", "t.conf:2: admin_listen [::]:8081 is not a loopback address"},
      {"listen 8080;\nadmin_listen 10.0.0.1:8081;\n", "t.conf:2: admin_listen 10.0.0.1:8081 is not a loopback"},
      {"listen 8080;\nadmin_auth_token UNIT_ADMIN_TOKEN;\n", "t.conf:2: \"admin_auth_token\" takes env:NAME"},
      {"listen 8080;\nadmin_auth_token env:;\n", "t.conf:2: \"admin_auth_token\" takes env:NAME"},
      {"listen 8080;\n\nadmin_auth_token env:UNIT_ADMIN_UNSET;\n", "t.conf:3: admin_auth_token: environment "
                                                                   "variable UNIT_ADMIN_UNSET is not set"},
      {"listen 8080;\nadmin_auth_token env:UNIT_ADMIN_EMPTY;\n", "t.conf:2: admin_auth_token: environment variable "
                                                                 "UNIT_ADMIN_EMPTY is empty"},
      {"listen 8080;\nadmin_auth_token env:UNIT_ADMIN_SHORT;\n", "t.conf:2: admin_auth_token: the token in "
                                                                 "UNIT_ADMIN_SHORT is too short"},
      {"listen 8080;\nadmin_auth_token env:A env:B;\n", "t.conf:2: \"admin_auth_token\" takes 1 argument"},
      {"listen 8080;\nworker_rlimit_nofile 8;\n", "t.conf:2: \"worker_rlimit_nofile\": worker_rlimit_nofile must be"},
      {"listen 8080;\nworker_rlimit_nofile lots;\n", "t.conf:2: \"worker_rlimit_nofile\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(text, sizeof(text), "%s%s", cases[i].conf, up);
    if (parse(text) != -1) fail_msg("case %zu accepted: %s", i, text);
    if (strstr(err, cases[i].want) == NULL) fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, err);
    if (strstr(err, "0123456789abcde")) fail_msg("case %zu: the token shows in:\n%s", i, err);
  }
}

/* Server connection reuse: the defaults (the adaptive pool, nginx's keepalive_* values), each directive, and
 * what is refused with file:line. */
static void test_upstream_reuse(void **state) {
  (void)state;
  char text[1024];
  if (parse("listen 8080;\nupstream b { server 127.0.0.1:1; }\nlocation / { proxy_pass http://b; }\n") != 0)
    fail_msg("%s", err);
  tether__cf_upstream *u = &cf.upstreams[0];
  assert_int_equal(u->keepalive, TETHER__KEEPALIVE_AUTO);
  assert_int_equal(u->pool_max_idle, 4096);
  assert_int_equal(u->keepalive_requests, 1000);
  assert_int_equal(u->keepalive_timeout_ms, 60000);
  assert_int_equal(u->keepalive_time_ms, 3600000);
  tether__config_release(&cf);
  if (parse("listen 8080;\nupstream b { server 127.0.0.1:1; keepalive 8; keepalive_timeout 5s; keepalive_requests 50;\n"
            "keepalive_time 10m; }\nupstream c { server 127.0.0.1:2; pool_max_idle 300; }\n"
            "upstream d { server 127.0.0.1:3; keepalive 0; }\nlocation / { proxy_pass http://b; }\n") != 0)
    fail_msg("%s", err);
  u = &cf.upstreams[0];
  assert_int_equal(u->keepalive, 8);
  assert_int_equal(u->keepalive_timeout_ms, 5000);
  assert_int_equal(u->keepalive_requests, 50);
  assert_int_equal(u->keepalive_time_ms, 600000);
  assert_int_equal(cf.upstreams[1].keepalive, TETHER__KEEPALIVE_AUTO);
  assert_int_equal(cf.upstreams[1].pool_max_idle, 300);
  assert_int_equal(cf.upstreams[2].keepalive, 0);
  tether__config_release(&cf);

  static const struct {
    const char *lines;
    const char *want;
  } cases[] = {
      {"keepalive -1;", "t.conf:3: \"keepalive\": keepalive must be an integer from 0 to 10000, got \"-1\""},
      {"keepalive many;", "t.conf:3: \"keepalive\": keepalive must be an integer"},
      {"keepalive 8 16;", "t.conf:3: \"keepalive\" takes 1 argument"},
      {"keepalive 8;\nkeepalive 16;", "t.conf:4: \"keepalive\" is duplicate (line 3)"},
      {"keepalive_timeout 5s 6s;", "t.conf:3: \"keepalive_timeout\" takes 1 argument"},
      {"keepalive_timeout soon;", "t.conf:3: \"keepalive_timeout\": invalid time \"soon\""},
      {"keepalive_timeout 1s;\nkeepalive_timeout 2s;", "t.conf:4: \"keepalive_timeout\" is duplicate (line 3)"},
      {"keepalive_requests -5;", "t.conf:3: \"keepalive_requests\": keepalive_requests must be an integer from 0"},
      {"keepalive_time forever;", "t.conf:3: \"keepalive_time\": invalid time \"forever\""},
      {"pool_max_idle 0;", "t.conf:3: \"pool_max_idle\": pool_max_idle must be an integer from 1 to 100000"},
      {"pool_max_idle 100001;", "t.conf:3: \"pool_max_idle\": pool_max_idle must be an integer from 1 to 100000"},
      {"pool_max_idle 64;\nkeepalive 32;", "t.conf:3: upstream \"b\": pool_max_idle bounds the pool that follows "
                                           "demand; with \"keepalive\" (line 4)"},
      {"keepalive 0;\npool_max_idle 64;", "t.conf:4: upstream \"b\": pool_max_idle bounds"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(text, sizeof(text),
             "listen 8080;\nupstream b { server 127.0.0.1:1;\n%s\n}\nlocation / { proxy_pass http://b; }\n",
             cases[i].lines);
    if (parse(text) != -1) fail_msg("case %zu accepted: %s", i, text);
    if (strstr(err, cases[i].want) == NULL) fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, err);
  }
}

/* Config, docs and code agree: each directive does what nginx's does, or is refused with file:line. */
static void test_agreement(void **state) {
  (void)state;
  const char *up = "upstream b { server 127.0.0.1:1; }\n";
  char text[1024];
  /* proxy_send_timeout is read (the upstream layer times the request's writes with it) */
  snprintf(text, sizeof(text), "listen 8080;\nproxy_send_timeout 7s;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.proxy_send_timeout_ms, 7000);
  /* worker_processes: at most TETHER__MAX_WORKERS; auto is capped there */
  snprintf(text, sizeof(text), "listen 8080;\nworker_processes 64;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.workers, 64);
  assert_int_equal(cf.workers_auto_cores, 0);
  assert_int_equal(auto_workers(200), TETHER__MAX_WORKERS);
  assert_int_equal(auto_workers(3), 3);
  assert_int_equal(auto_workers(0), 1);
  snprintf(text, sizeof(text), "listen 8080;\nworker_processes auto;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_true(cf.workers >= 1 && cf.workers <= TETHER__MAX_WORKERS);
  assert_true(cf.workers_auto_cores >= cf.workers);
  /* listen backlog=N reaches listen(); the default is TETHER__LISTEN_BACKLOG */
  snprintf(text, sizeof(text), "listen 8080 backlog=511 reuseport;\nlisten 8081;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.listen_backlog[0], 511);
  assert_int_equal(cf.listen_backlog[1], TETHER__LISTEN_BACKLOG);
  /* error_log PATH LEVEL: the level is used */
  snprintf(text, sizeof(text), "listen 8080;\nerror_log /tmp/e.log warn;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_string_equal(cf.error_log, "/tmp/e.log");
  assert_int_equal(cf.error_log_level, TETHER_LOG_WARN);
  snprintf(text, sizeof(text), "listen 8080;\nerror_log stderr;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.error_log_level, -1);
  /* real_ip_recursive on is what Tether does; server_name with one server; events with nginx's directives */
  snprintf(text, sizeof(text),
           "events { worker_connections 512; multi_accept on; }\nhttp { server { listen 8080;\n"
           "server_name a.example b.example; real_ip_recursive on; auth_jwt_require_exp off; %s } }\n",
           up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.jwt.require_exp, 0);
  /* proxy_pass http://b/ in location / is the same request target */
  snprintf(text, sizeof(text), "listen 8080;\n%slocation / { proxy_pass http://b/; }\n", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.locations[0].upstream, 0);

  static const struct {
    const char *conf;
    const char *want;
  } cases[] = {
      {"listen 8080;\nworker_processes 65;\n", "t.conf:2: \"worker_processes\": worker_processes must be an integer "
                                               "from 1 to 64, got \"65\""},
      {"listen 8080;\nworker_processes 256;\n", "t.conf:2: \"worker_processes\": worker_processes must be"},
      {"listen 8080 backlog=0;\n", "t.conf:1: \"listen\": backlog must be an integer from 1 to 65535"},
      {"listen 8080 backlog=many;\n", "t.conf:1: \"listen\": backlog must be"},
      {"listen 8080 ssl;\n", "t.conf:1: listen ... ssl: no \"ssl_certificate\" is defined"},
      {"listen 8080;\nhttp2 maybe;\n", "t.conf:2: \"http2\" takes on or off, got \"maybe\""},
      {"listen 8080;\nhttp2_idle_timeout 3m;\n", "t.conf:2: \"http2_idle_timeout\" is obsolete (nginx 1.19.7): use "
                                                 "\"keepalive_timeout\""},
      {"listen 8080;\nhttp2_push on;\n", "t.conf:2: unknown directive \"http2_push\""},
      {"listen 8080;\nhttp2_max_concurrent_streams 0;\n", "t.conf:2: \"http2_max_concurrent_streams\": streams must"},
      {"listen 8080;\nadmin_listen 8081 backlog=10;\n", "t.conf:2: \"admin_listen\" takes an address and no parameter"},
      {"listen 8080;\nerror_log /tmp/e.log loud;\n", "t.conf:2: error_log: unknown level \"loud\""},
      {"listen 8080;\nerror_log syslog:server=127.0.0.1;\n", "t.conf:2: \"error_log\" takes a file or stderr"},
      {"listen 8080;\nlarge_client_header_buffers 16k;\n", "t.conf:2: \"large_client_header_buffers\" takes 2 "
                                                           "arguments"},
      {"listen 8080;\nlarge_client_header_buffers 0 8k;\n", "t.conf:2: \"large_client_header_buffers\": the number "
                                                            "of buffers must be"},
      {"listen 8080;\nlarge_client_header_buffers 4 512k;\n", "t.conf:2: \"large_client_header_buffers 4 512k\": "
                                                              "Tether reads a request head into one buffer"},
      {"listen 8080;\nclient_header_buffer_size 512;\n", "t.conf:2: \"client_header_buffer_size\": the size must be "
                                                         "from 1k to 1m"},
      {"listen 8080;\nclient_header_buffer 4 16k;\n", "t.conf:2: \"client_header_buffer\" takes 1 argument"},
      {"listen 8080;\nreal_ip_recursive off;\n", "t.conf:2: \"real_ip_recursive\": only on"},
      {"listen 8080;\nreal_ip_header X-Real-IP;\n", "t.conf:2: \"real_ip_header\" takes X-Forwarded-For or"},
      {"listen 8080;\nserver_name;\n", "t.conf:2: \"server_name\" takes at least one name"},
      {"listen 8080;\nserver { }\nserver { }\n", "t.conf:2: a server block, with listen/server_name/location outside "
                                                 "one (t.conf:1)"},
      {"listen 8080;\nevents { worker_connections 1024; frobnicate 1; }\n", "t.conf:2: unknown directive "
                                                                            "\"frobnicate\" in events"},
      {"listen 8080;\nforwarded yes;\n", "t.conf:2: \"forwarded\" takes on or off"},
      {"listen 8080;\nauth_jwt_require_exp yes;\n", "t.conf:2: \"auth_jwt_require_exp\" takes on or off"},
      {"listen 8080;\nlocation / { return 301 https://$hots/; }\n", "t.conf:2: return URL \"https://$hots/\": unknown "
                                                                    "variable"},
      {"listen 8080;\nlocation / { return ftp://example.com/; }\n", "t.conf:2: \"return\": status must be an integer"},
      {"listen 8080;\nhttp { return 301 https://$host; }\n", "t.conf:2: \"return\" is not allowed in http { }"},
      {"listen 8080;\nlocation / { return 302 \"\"; }\n", "t.conf:2: return 302: the URL is empty"},
      {"listen 8080;\nadd_header X-A;\n", "t.conf:2: \"add_header\" takes 2 to 3 arguments"},
      {"listen 8080;\nadd_header X-A 1 sometimes;\n", "t.conf:2: add_header: the third parameter can only be "
                                                      "\"always\""},
      {"listen 8080;\nadd_header \"X A\" 1;\n", "t.conf:2: add_header: \"X A\" is not a header name"},
      {"listen 8080;\nadd_header Content-Length 5;\n", "t.conf:2: add_header Content-Length: Tether frames"},
      {"listen 8080;\nlocation / { add_header X-A $nope; }\n", "t.conf:2: add_header value \"$nope\": unknown"},
      {"listen 8080;\nadd_header X-A \"a\nb\";\n", "t.conf:2: add_header X-A: the value has control characters"},
      {"listen 8080;\nlocation / { return 444; }\n", "t.conf:2: return 444"},
      {"listen 8080;\nlocation /api/ { proxy_pass http://b/; }\n", "t.conf:2: proxy_pass http://b/: a URI after the "
                                                                   "upstream's name is not supported"},
      {"listen 8080;\nlocation / { proxy_pass http://b/v1; }\n", "write http://b"},
      {"listen 8080;\nauth_jwt_key weak_secret_ok;\n", "t.conf:2: auth_jwt_key takes a key"},
      {"listen 8080;\nlocation / { proxy_pass b; }\n", "t.conf:2: proxy_pass must be http://UPSTREAM"}, /* short */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(text, sizeof(text), "%s%s", cases[i].conf, up);
    if (parse(text) != -1) fail_msg("case %zu accepted: %s", i, text);
    if (strstr(err, cases[i].want) == NULL) fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, err);
  }
}

/* One header buffer: nginx's client_header_buffer_size (alias client_header_buffer) sets it;
 * large_client_header_buffers N SIZE maps to N x SIZE for the head and SIZE for the URI; the larger wins. */
static void test_header_buffers(void **state) {
  (void)state;
  const char *up = "upstream b { server 127.0.0.1:1; }\n";
  char text[512];
  snprintf(text, sizeof(text), "listen 8080;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 16384);
  assert_int_equal(cf.large_uri, 8192);
  snprintf(text, sizeof(text), "listen 8080;\nclient_header_buffer_size 32k;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 32768);
  assert_int_equal(cf.large_uri, 8192);
  snprintf(text, sizeof(text), "listen 8080;\nclient_header_buffer 8k;\n%s", up); /* the older name */
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 8192);
  assert_int_equal(cf.large_uri, 7168); /* a request line must fit the buffer */
  snprintf(text, sizeof(text), "listen 8080;\nlarge_client_header_buffers 4 8k;\n%s", up); /* nginx's default */
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 32768);
  assert_int_equal(cf.large_uri, 8192);
  snprintf(text, sizeof(text), "listen 8080;\nclient_header_buffer_size 1k;\nlarge_client_header_buffers 2 4k;\n%s",
           up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 8192);
  assert_int_equal(cf.large_uri, 4096);
  snprintf(text, sizeof(text), "listen 8080;\nclient_header_buffer_size 64k;\nlarge_client_header_buffers 4 8k;\n%s",
           up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.client_header_buffer, 65536);
  assert_int_equal(cf.large_uri, 65536 - 1024);
}

/* Several server blocks: addresses are shared and bound once, each has its default server, names select
 * servers in nginx's order, and the http level's settings are inherited where a server has none. */
static void test_virtual_servers(void **state) {
  (void)state;
  const char *text = "http {\n"
                     "  upstream a { server 127.0.0.1:1; }\n"
                     "  upstream b { server 127.0.0.1:2; }\n"
                     "  proxy_set_header X-Level http;\n"
                     "  auth_jwt_claim_header sub X-User;\n"
                     "  server {\n" /* 6: server 0 */
                     "    listen 127.0.0.1:8080;\n"
                     "    server_name Example.COM www.example.com;\n"
                     "    location / { proxy_pass http://a; }\n"
                     "  }\n"
                     "  server {\n" /* 11: server 1 */
                     "    listen 127.0.0.1:8080 default_server backlog=100;\n"
                     "    listen 8081;\n"
                     "    server_name *.example.com .example.org \"\";\n"
                     "    proxy_set_header X-Level server;\n    proxy_http_version 1.1;\n"
                     "    location / { proxy_pass http://b; }\n"
                     "    location /own/ { proxy_pass http://b; proxy_set_header X-Level location; }\n"
                     "  }\n"
                     "  server {\n" /* 20: server 2 */
                     "    listen 127.0.0.1:8080;\n"
                     "    server_name *.api.example.com www.example.* mail.*;\n"
                     "    location /x { return 200 x; }\n"
                     "  }\n"
                     "}\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.nvservers, 3);
  assert_int_equal(cf.nlisten, 2);
  assert_int_equal(cf.listen_default[0], 1); /* default_server */
  assert_int_equal(cf.listen_default[1], 1); /* the only one */
  assert_int_equal(cf.listen_backlog[0], 100);
  assert_int_equal(cf.vservers[0].listens, 1);
  assert_int_equal(cf.vservers[1].listens, 3);
  assert_string_equal(cf.vservers[0].names[0], "example.com"); /* lower-cased */
  assert_int_equal(cf.vservers[1].nlocations, 2);
  assert_int_equal(cf.vservers[2].first_location, 3);
  /* proxy_set_header: a level with its own list does not inherit the outer one (nginx) */
  assert_string_equal(cf.locations[0].headers.set[0].value[0].text, "http");
  assert_string_equal(cf.locations[1].headers.set[0].value[0].text, "server");
  assert_string_equal(cf.locations[2].headers.set[0].value[0].text, "location");
  assert_int_equal(cf.nclaim_headers, 1);
  static const struct {
    const char *host;
    int listener, want;
  } cases[] = {
      {"example.com", 0, 0},          {"EXAMPLE.com.", 0, 0},
      {"www.example.com:8080", 0, 0}, {"a.example.com", 0, 1},
      {"a.b.example.com", 0, 1},      {"example.org", 0, 1},
      {"x.example.org", 0, 1},        {"v1.api.example.com", 0, 2}, /* the longest leading wildcard */
      {"www.example.net", 0, 2},      {"mail.example.com", 0, 1},   /* a leading wildcard before a trailing one */
      {"unknown.test", 0, 1},         {"", 0, 1},                   /* "" names requests without a Host */
      {"example.com", 1, 1},          {NULL, 1, 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *h = cases[i].host;
    int got = tether__vserver_select(&cf, cases[i].listener, h, h ? strlen(h) : 0);
    if (got != cases[i].want)
      fail_msg("%s on listener %d: server %d, wanted %d", h, cases[i].listener, got, cases[i].want);
  }
  /* without default_server the first server on an address is its default */
  text = "server { listen 9000; server_name a; location / { return 200; } }\n"
         "server { listen 9000; server_name b; location / { return 200; } }\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.listen_default[0], 0);
  assert_int_equal(tether__vserver_select(&cf, 0, "c", 1), 0);
  assert_int_equal(tether__vserver_select(&cf, 0, "B", 1), 1);
  /* ssl on one listen of an address makes it TLS; servers inherit the http level's certificates */
  text = "ssl_certificate /c.pem;\nssl_certificate_key /c.key;\nssl_protocols TLSv1.3;\n"
         "server { listen 9443 ssl; server_name a; location / { return 200; } }\n"
         "server { listen 9443; server_name b; ssl_certificate /b.pem; ssl_certificate_key /b.key;\n"
         "  location / { return 200; } }\n";
  if (parse(text) != 0) fail_msg("%s", err);
  assert_true(cf.listen_ssl[0]);
  assert_string_equal(cf.vservers[0].tls.cert[0], "/c.pem");
  assert_string_equal(cf.vservers[1].tls.cert[0], "/b.pem");
  assert_int_equal(cf.vservers[1].tls.protocols, TETHER__TLS_V13);
  assert_int_equal(cf.vservers[1].tls.session_tickets, 1);
}

static void test_virtual_server_errors(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *want;
  } cases[] = {
      {"server { listen 80 default_server; location / { return 200; } }\n"
       "server { listen 80 default_server; location / { return 200; } }\n",
       "t.conf:2: a duplicate default server for 80 (the first is at t.conf:1)"},
      {"server { listen 80 backlog=10; location / { return 200; } }\n"
       "server { listen 80 backlog=20; location / { return 200; } }\n",
       "t.conf:2: duplicate listen options for 80 (backlog= is also given at t.conf:1)"},
      {"server { listen 80; listen 80; location / { return 200; } }\n", "t.conf:1: a duplicate listen 80"},
      {"server { server_name a; location / { return 200; } }\n", "t.conf:1: this server has no \"listen\""},
      {"server { listen 80; server_name ~^www; location / { return 200; } }\n", "regular expression names"},
      {"server { listen 80; server_name www.*.com; location / { return 200; } }\n", "a wildcard is"},
      {"server { listen 80; server_name a:80; location / { return 200; } }\n", "no spaces, slashes, quotes or port"},
      {"server { listen 80; location / { return 200; } }\nlocation /x { return 200; }\n",
       "t.conf:2: \"location\" outside a server block, with server blocks (the first at t.conf:1)"},
      {"server { listen 80; client_max_body_size 1m; location / { return 200; } }\n"
       "server { listen 81; location / { return 200; } }\n",
       "t.conf:1: \"client_max_body_size\" in a server block: Tether applies it to every server"},
      {"server { listen 80 ssl; location / { return 200; } }\n",
       "t.conf:1: listen ... ssl: no \"ssl_certificate\" is defined for this server"},
      {"listen 80;\ninclude /nonexistent/tether-test.conf;\nlocation / { return 200; }\n",
       "t.conf:2: include /nonexistent/tether-test.conf: no such file"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (parse(cases[i].text) != -1) fail_msg("case %zu accepted: %s", i, cases[i].text);
    if (strstr(err, cases[i].want) == NULL) fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, err);
  }
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* include FILE|GLOB: relative to the main file's directory, anywhere a directive can be; errors in an
 * included file name it; a file including itself stops at the nesting bound. */
static void test_include(void **state) {
  (void)state;
  char dir[] = "/tmp/tether-unit-include-XXXXXX", path[512];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/main.conf", dir);
  assert_int_equal(mkdir(strcat(strcpy(path, dir), "/conf.d"), 0700), 0);
  snprintf(path, sizeof(path), "%s/main.conf", dir);
  write_file(dir, "main.conf",
             "include upstreams.conf;\n"
             "server {\n  listen 8080;\n  include conf.d/*.loc;\n  include conf.d/none-*.conf;\n}\n");
  write_file(dir, "upstreams.conf", "upstream b {\n  include conf.d/servers.inc;\n}\n");
  write_file(dir, "conf.d/servers.inc", "server 127.0.0.1:1;\nserver 127.0.0.1:2;\n");
  write_file(dir, "conf.d/1-api.loc", "location /api/ { proxy_pass http://b; }\n");
  write_file(dir, "conf.d/2-root.loc", "location / { return 200 root; }\n");
  if (load(path) != 0) fail_msg("%s", err);
  assert_int_equal(cf.upstreams[0].nservers, 2);
  assert_int_equal(cf.nlocations, 2);
  assert_string_equal(cf.locations[0].prefix, "/api/"); /* glob(3) order */
  assert_int_equal(cf.vservers[0].nlocations, 2);
  /* an error in an included file names it and its line */
  write_file(dir, "conf.d/2-root.loc", "\n\nlocation / { frobnicate; }\n");
  assert_int_equal(load(path), -1);
  char want[600];
  snprintf(want, sizeof(want), "%s/conf.d/2-root.loc:3: unknown directive \"frobnicate\" in location", dir);
  if (strstr(err, want) == NULL) fail_msg("wanted %s in:\n%s", want, err);
  /* a file that closes more than it opens, or leaves a block open */
  write_file(dir, "conf.d/2-root.loc", "location / { return 200; }\n}\n");
  assert_int_equal(load(path), -1);
  snprintf(want, sizeof(want), "%s/conf.d/2-root.loc:2: unexpected \"}\"", dir);
  if (strstr(err, want) == NULL) fail_msg("wanted %s in:\n%s", want, err);
  write_file(dir, "conf.d/2-root.loc", "location / {\n");
  assert_int_equal(load(path), -1);
  snprintf(want, sizeof(want), "%s/conf.d/2-root.loc:2: unexpected end of file, expecting \"}\"", dir);
  if (strstr(err, want) == NULL) fail_msg("wanted %s in:\n%s", want, err);
  /* a loop */
  write_file(dir, "conf.d/2-root.loc", "include conf.d/2-root.loc;\n");
  assert_int_equal(load(path), -1);
  assert_non_null(strstr(err, "included files nested deeper than 8"));
  /* a missing file named without a wildcard, from an included file */
  write_file(dir, "conf.d/2-root.loc", "\ninclude missing.conf;\n");
  assert_int_equal(load(path), -1);
  snprintf(want, sizeof(want), "%s/conf.d/2-root.loc:2: include %s/missing.conf: no such file", dir, dir);
  if (strstr(err, want) == NULL) fail_msg("wanted %s in:\n%s", want, err);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* HTTP/2: listen ... http2 serves it on the address (every server there), http2 on a server or the http level,
 * and the limits in nginx's names with nginx's defaults. */
static void test_http2(void **state) {
  (void)state;
  const char *up = "upstream b { server 127.0.0.1:9001; }\nlocation / { proxy_pass http://b; }\n";
  char text[1024];
  snprintf(text, sizeof(text), "listen 8080;\n%s", up);
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.h2_max_streams, 128);
  assert_int_equal(cf.keepalive_requests, 1000);
  assert_int_equal(cf.h2_preread, 65536);
  assert_int_equal(cf.h2_max_header, 16384);
  assert_int_equal(cf.vservers[0].http2, 0);
  snprintf(text, sizeof(text),
           "http2_max_concurrent_streams 8;\nkeepalive_requests 5;\nhttp2_recv_timeout 3s;\nsend_timeout 2s;\n"
           "http2_body_preread_size 16k;\nhttp2_max_field_size 1k;\nhttp2_max_header_size 2k;\n"
           "upstream b { server 127.0.0.1:9001; }\n"
           "server { listen 8080 http2; location / { proxy_pass http://b; } }\n"
           "server { listen 8080; server_name b; location / { proxy_pass http://b; } }\n"
           "server { listen 8081; http2 on; location / { proxy_pass http://b; } }\n"
           "server { listen 8082; location / { proxy_pass http://b; } }\n");
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.h2_max_streams, 8);
  assert_int_equal(cf.keepalive_requests, 5);
  assert_int_equal(cf.h2_recv_timeout_ms, 3000);
  assert_int_equal(cf.send_timeout_ms, 2000);
  assert_int_equal(cf.h2_preread, 16384);
  assert_int_equal(cf.h2_max_field, 1024);
  assert_int_equal(cf.h2_max_header, 2048);
  assert_int_equal(cf.vservers[0].http2, 1);
  assert_int_equal(cf.vservers[1].http2, 1); /* on 8080 with the server that says http2 */
  assert_int_equal(cf.vservers[2].http2, 1);
  assert_int_equal(cf.vservers[3].http2, 0);
  assert_int_equal(cf.listen_http2[0], 1);
}

/* The lists are as long as the file makes them (a small configuration is small), grow to the documented
 * limits with every element intact, and one more is refused with file:line. */
static char big[200000];

/* 32 servers with 4 locations each (128), 32 upstreams (the first with 64 servers), 16 proxy_set_header in the
 * first server and in its first location, and extra appended inside the last server block. */
static const char *limits_text(const char *extra_top, const char *extra_server, const char *extra_upstream) {
  size_t n = 0;
#define PUT(...) n += (size_t)snprintf(big + n, sizeof(big) - n, __VA_ARGS__)
  PUT("%s", extra_top);
  for (int u = 0; u < 32; u++) {
    PUT("upstream u%d {\n", u);
    for (int k = 0; k < (u == 0 ? 64 : 2); k++) PUT(" server 10.0.%d.%d:80;\n", u, k + 1);
    if (u == 0) PUT("%s", extra_upstream);
    PUT("}\n");
  }
  for (int v = 0; v < 32; v++) {
    PUT("server {\n listen 8080;\n server_name s%d.example;\n", v);
    for (int h = 0; v == 0 && h < 16; h++) PUT(" proxy_set_header X-S%d s%d;\n", h, h);
    for (int l = 0; l < 4; l++) {
      PUT(" location /p%d {\n  proxy_pass http://u%d;\n", v * 4 + l, (v * 4 + l) % 32);
      for (int h = 0; v == 0 && l == 0 && h < 16; h++) PUT("  proxy_set_header X-L%d l%d;\n", h, h);
      PUT(" }\n");
    }
    if (v == 31) PUT("%s", extra_server);
    PUT("}\n");
  }
#undef PUT
  assert_true(n < sizeof(big) - 1);
  return big;
}

static void expect_refused(const char *text, const char *want) {
  assert_int_equal(parse(text), -1);
  if (strstr(err, want) == NULL) fail_msg("wanted \"%s\" in:\n%s", want, err);
  assert_int_equal(cf.nlocations, 0); /* a refused configuration owns nothing */
  assert_null(cf.locations);
}

static void test_lists_sized_and_bounded(void **state) {
  (void)state;
  const char *one = "listen 8080;\nupstream b { server 127.0.0.1:1; }\nlocation / { proxy_pass http://b; }\n";
  if (parse(one) != 0) fail_msg("%s", err);
  size_t small = sizeof(cf) + tether__cf_owned_bytes(&cf);
  assert_true(small < 96 * 1024); /* it was 5.6 MB when every list had its limit's room */
  assert_int_equal(cf.nlocations, 1);

  if (parse(limits_text("", "", "")) != 0) fail_msg("%s", err);
  assert_int_equal(cf.nvservers, 32);
  assert_int_equal(cf.nlocations, 128);
  assert_int_equal(cf.nupstreams, 32);
  assert_int_equal(cf.upstreams[0].nservers, 64);
  assert_string_equal(cf.upstreams[0].servers[63].name, "10.0.0.64:80");
  assert_string_equal(cf.upstreams[31].servers[1].name, "10.0.31.2:80");
  assert_string_equal(cf.upstreams[31].name, "u31");
  for (size_t i = 0; i < 128; i++) {
    char want[16];
    snprintf(want, sizeof(want), "/p%zu", i);
    assert_string_equal(cf.locations[i].prefix, want);
    assert_int_equal(cf.locations[i].upstream, (int)(i % 32));
  }
  assert_string_equal(cf.vservers[31].names[0], "s31.example");
  assert_int_equal(cf.vservers[31].first_location, 124);
  assert_int_equal(cf.locations[0].headers.nset, 16); /* its own */
  assert_string_equal(cf.locations[0].headers.set[15].name, "X-L15");
  assert_int_equal(cf.locations[1].headers.nset, 16); /* its server's, shared */
  assert_ptr_equal(cf.locations[1].headers.set, cf.vservers[0].headers.set);
  assert_string_equal(cf.locations[1].headers.set[15].value[0].text, "s15");
  assert_int_equal(cf.locations[4].headers.nset, 0);
  size_t large = sizeof(cf) + tether__cf_owned_bytes(&cf);
  assert_true(large > small);
  tether__config_release(&cf);
  tether__config_release(&cf); /* twice is harmless */

  /* one more of each: refused where it is written */
  static const struct {
    const char *top, *server, *upstream, *at, *why;
  } over[] = {
      /* at: where the one too many is (a block given first makes the last one too many) */
      {"", " location /one-more { return 200; }\n", "", "location /one-more", "too many locations"},
      {"server { listen 8081; }\n", "", "", "server {\n listen 8080;\n server_name s31.",
       "too many server blocks (at most 32)"},
      {"", "", " server 10.9.9.9:80;\n", "server 10.9.9.9", "too many servers in upstream \"u0\" (at most 64)"},
      {"upstream extra { server 10.9.9.9:80; }\n", "", "", "upstream u31", "too many upstreams"},
      {"", " proxy_set_header X-One-More 1;\n", "", "", ""}, /* the last server has none: accepted */
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(over); i++) {
    const char *text = limits_text(over[i].top, over[i].server, over[i].upstream);
    if (over[i].at[0] == '\0') {
      if (parse(text) != 0) fail_msg("%s", err);
      continue;
    }
    int line = 1;
    for (const char *p = text; p < strstr(text, over[i].at); p++) line += *p == '\n';
    char want[256];
    snprintf(want, sizeof(want), "t.conf:%d: %s", line, over[i].why);
    expect_refused(text, want);
  }
  /* the limits of a level's lists */
  char text[8192];
  size_t n = (size_t)snprintf(text, sizeof(text), "listen 8080;\nlocation / {\n return 200;\n");
  for (int h = 0; h < 17; h++) n += (size_t)snprintf(text + n, sizeof(text) - n, " add_header X-A%d a;\n", h);
  snprintf(text + n, sizeof(text) - n, "}\n");
  expect_refused(text, "t.conf:20: add_header: at most 16 per level");
  n = (size_t)snprintf(text, sizeof(text), "listen 8080;\nlocation / { return 200; }\n");
  for (int h = 0; h < 33; h++) n += (size_t)snprintf(text + n, sizeof(text) - n, "set_real_ip_from 10.%d.0.0/16;\n", h);
  expect_refused(text, "t.conf:35: too many set_real_ip_from");
  text[strlen(text) - strlen("set_real_ip_from 10.32.0.0/16;\n")] = '\0';
  if (parse(text) != 0) fail_msg("%s", err);
  assert_int_equal(cf.nreal_ip_from, 32);
  char want[32];
  for (int h = 0; h < 32; h++) {
    tether__cidr c;
    snprintf(want, sizeof(want), "10.%d.0.0/16", h);
    assert_int_equal(tether__cidr_parse(want, &c), 0);
    assert_memory_equal(&cf.real_ip_from[h], &c, sizeof(c));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_issue_example),
      cmocka_unit_test(test_nginx_shape),
      cmocka_unit_test(test_add_header_and_return),
      cmocka_unit_test(test_errors_name_the_line),
      cmocka_unit_test(test_several_errors_reported),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_proxy_ssl_inheritance),
      cmocka_unit_test(test_sticky_route_and_key_file),
      cmocka_unit_test(test_admin_and_limits),
      cmocka_unit_test(test_agreement),
      cmocka_unit_test(test_header_buffers),
      cmocka_unit_test(test_virtual_servers),
      cmocka_unit_test(test_http2),
      cmocka_unit_test(test_virtual_server_errors),
      cmocka_unit_test(test_include),
      cmocka_unit_test(test_lists_sized_and_bounded),
      cmocka_unit_test(test_upstream_reuse),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
