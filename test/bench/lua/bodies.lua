-- wrk script for `kaching bench`: POSTs each line of a bodies file once (pre-signed unique events), or GETs
-- the path when the file is "-". Threads take every n-th line. A thread that has sent all its lines marks
-- ran_out and resends its last body (a duplicate), so the bench knows the figure covers less than the run.
-- Prints one JSON line in done().
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file, path, token, nthreads = args[1], args[2], args[3], tonumber(args[4])
  reqs = {}
  bad = 0
  ran_out = 0
  sent = 0
  if file == "-" then
    reqs[1] = wrk.format("GET", path)
    ran_out = -1
    return
  end
  local headers = { ["content-type"] = "application/json" }
  if token ~= "-" then headers["authorization"] = "Bearer " .. token end
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then reqs[#reqs + 1] = wrk.format("POST", path, headers, line) end
    i = i + 1
  end
end

function request()
  if ran_out == -1 then return reqs[1] end
  sent = sent + 1
  if sent > #reqs then
    ran_out = 1
    return reqs[#reqs]
  end
  return reqs[sent]
end

function response(status, headers, body)
  if status >= 300 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local bads, outs = 0, 0
  for _, t in ipairs(threads) do
    bads = bads + (t:get("bad") or 0)
    outs = outs + math.max(0, t:get("ran_out") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"non2xx":%d,"errors":%d,"ran_out":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, bads, e.connect + e.read + e.write + e.timeout, outs))
end
