-- wrk script for bench/app: GET /whoami with one of many logged-in sessions' cookies, in turn, so every
-- request reads a session from Redis and writes it back (visits + 1). The cookies file (one
-- "connect.sid=..." per line) is the script's argument: wrk ... -s whoami.lua URL -- COOKIES_FILE
local cookies, n, i = {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      cookies[n] = line
    end
  end
  -- each thread starts somewhere else in the list
  i = math.random(n)
end

function request()
  i = i % n + 1
  return wrk.format("GET", "/whoami", { ["Cookie"] = cookies[i] })
end
