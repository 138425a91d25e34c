-- wrk script: one new transaction per request to POST /v1/transactions (ids unique per run,
-- thread and request; amounts and cards varied), so every request is a real decision.
local counter = 0
local thread_id = 0
local run = ""

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  counter = 0
  math.randomseed(os.time() + tid)
  run = tostring(os.time()) .. "_" .. tostring(math.random(1000000))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local card = (counter * 7919 + tid * 104729) % 5000
  local amount = 5 + (counter * 37) % 400
  local body = string.format(
    '{"transaction_id":"wrk%s_%d_%d","card_id":"card_%d","amount":%d.25,"timestamp":"2026-11-25T12:%02d:%02dZ","merchant_id":"m_%d","currency":"USD"}',
    run, tid, counter, card, amount, math.floor(counter / 60) % 60, counter % 60, counter % 900)
  return wrk.format(nil, "/v1/transactions", nil, body)
end

-- One parseable line: requests/s and latency percentiles in milliseconds.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("result %.0f %.2f %.2f %.2f %.2f\n", summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000))
  if summary.errors.status > 0 then io.write(string.format("non-2xx answers: %d\n", summary.errors.status)) end
end
