-- wrk script: POST /v1/transactions, one transaction per request, from a file of generated
-- transactions (`cardwatch generate`, labels stripped: `make_traffic` in common.sh) given after
-- `--` with wrk's thread count: `wrk -tN ... -s benchmarks/decide.lua URL -- FILE N`. Thread t
-- of N sends lines t, t + N, ... in order: each card's history arrives in time order (a few a
-- day, with the generator's fraud patterns) and every request is a new transaction. The
-- requests are formatted before the run: building them in request() costs wrk CPU that the
-- server shares. A thread that runs out of lines starts again (its repeats are answered as
-- duplicates): done() says so, and the benchmark scripts then fail.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = args[1] or error("decide.lua needs the traffic file: wrk -tN ... -- FILE N")
  local n = tonumber(args[2]) or error("decide.lua needs wrk's thread count after the file")
  local headers = { ["Content-Type"] = "application/json" }
  requests, next_request, wrapped = {}, 0, 0
  local i = 0
  for line in io.lines(file) do
    if i % n == tid then requests[#requests + 1] = wrk.format("POST", "/v1/transactions", headers, line) end
    i = i + 1
  end
  if #requests == 0 then error("no transactions for thread " .. tid .. " in " .. file) end
end

function request()
  next_request = next_request + 1
  if next_request > #requests then
    next_request = 1
    wrapped = wrapped + 1
  end
  return requests[next_request]
end

-- One parseable line: requests/s and latency percentiles in milliseconds.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("result %.0f %.2f %.2f %.2f %.2f\n", summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000))
  if summary.errors.status > 0 then io.write(string.format("non-2xx answers: %d\n", summary.errors.status)) end
  for _, thread in ipairs(threads) do
    if thread:get("wrapped") > 0 then io.write("ran out of transactions: give the run a longer traffic file\n") end
  end
end
