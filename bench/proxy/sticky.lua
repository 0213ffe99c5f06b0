-- wrk script for bench/proxy's sticky case: the first 64 requests come without a cookie (new clients); the
-- balancer binds each to a server with a Set-Cookie, which is kept. From then on every request sends one of
-- those 64 cookies back, in turn, as 64 returning clients would: the balancer reads and honours them.
local jar, n, i = {}, 0, 0

function request()
  if n < 64 then
    return wrk.format("GET", "/")
  end
  i = i % n + 1
  return wrk.format("GET", "/", { ["Cookie"] = jar[i] })
end

function response(status, headers, body)
  if n >= 64 then
    return
  end
  local sc = headers["Set-Cookie"] or headers["set-cookie"]
  if sc then
    n = n + 1
    jar[n] = sc:match("^([^;]+)")
  end
end
