-- wrk script: cycle through a list of requests, and print the results as one JSON line.
--
--   wrk -t2 -c64 -d10s -s benchmarks/keys.lua http://127.0.0.1:8080 -- KEYFILE THREADS
--
-- KEYFILE has one request a line: a path, optionally followed by a tab and a Range value
-- ("bytes=0-65535", or nothing), then optionally more tab-separated "Name: value" headers
-- (W1s: a SigV4 signature made in advance, Host included). Requests are formatted once, in
-- init(); thread i starts at offset i * n / THREADS so the threads do not march in step over
-- the same keys.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local requests = {}
local position = 0

function init(args)
  local keyfile, nthreads = args[1], tonumber(args[2] or "1")
  for line in io.lines(keyfile) do
    local path, rest = line:match("^([^\t]+)\t?(.*)$")
    if path then
      local range, extra = rest:match("^([^\t]*)\t?(.*)$")
      local headers = {}
      if range ~= "" then
        headers["Range"] = range
      end
      for name, value in extra:gmatch("([^\t:]+): ([^\t]*)") do
        headers[name] = value
      end
      requests[#requests + 1] = wrk.format("GET", path, headers)
    end
  end
  if #requests == 0 then
    error("no requests in " .. keyfile)
  end
  position = math.floor(index * #requests / nthreads)
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"wrk": {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
