-- SPDX-License-Identifier: MIT
-- A realistic REST mix through the gateway for wrk (test/load/load.py sets the environment):
--
--   LOAD_KEY          the Bearer API key
--   LOAD_PORTFOLIOS   comma-separated portfolio ids (read, listed, calculated)
--   LOAD_WRITE_PF     comma-separated portfolio ids the DEPOSITs go to
--   LOAD_EQUITIES     comma-separated equity ids (quotes)
--   LOAD_BONDS        comma-separated bond ids (analytics)
--   LOAD_AS_OF        the calculate date (YYYY-MM-DD)
--
-- Weights per 20 requests: 5 GET portfolio, 3 list constituents, 2 calculate, 5 quote,
-- 3 bond analytics, 2 writes (DEPOSIT with a unique Idempotency-Key).  Every non-2xx answer
-- is counted (a response() hook: wrk itself counts only >= 400) and the first few printed; done() prints one JSON line starting with
-- "LOAD_RESULT " that the driver parses (latencies in microseconds).

local function split(s)
    local t = {}
    for x in string.gmatch(s or "", "[^,]+") do
        t[#t + 1] = x
    end
    return t
end

local key = os.getenv("LOAD_KEY") or ""
local pfs = split(os.getenv("LOAD_PORTFOLIOS"))
local wpfs = split(os.getenv("LOAD_WRITE_PF"))
local eqs = split(os.getenv("LOAD_EQUITIES"))
local bonds = split(os.getenv("LOAD_BONDS"))
local as_of = os.getenv("LOAD_AS_OF") or "2024-06-14"

local kinds = { "get", "quote", "constituents", "bond", "get", "calculate", "quote", "write",
                "get", "constituents", "quote", "bond", "get", "calculate", "quote", "write",
                "get", "constituents", "quote", "bond" }

local threads = {}
local thread_seq = 0

function setup(thread)
    thread_seq = thread_seq + 1
    thread:set("tid", thread_seq)
    threads[#threads + 1] = thread
end

local i, printed, wseq = 0, 0, 0
n_req, non2xx = 0, 0 -- globals: done() reads them with thread:get()

local function pick(t)
    return t[math.random(#t)]
end

function init(args)
    math.randomseed(os.time() * 1000 + (tid or 0))
    i = math.random(#kinds) - 1
end

local auth = { ["Authorization"] = "Bearer " .. key }
local json_h = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }

function request()
    i = i % #kinds + 1
    local k = kinds[i]
    _G["n_" .. k] = (_G["n_" .. k] or 0) + 1
    if k == "get" then
        return wrk.format("GET", "/portfolios/" .. pick(pfs), auth)
    elseif k == "constituents" then
        return wrk.format("GET", "/portfolios/" .. pick(pfs) .. "/constituents", auth)
    elseif k == "calculate" then
        return wrk.format("POST", "/portfolios/" .. pick(pfs) .. "/calculate", json_h,
                          '{"asOf":"' .. as_of .. '"}')
    elseif k == "quote" then
        return wrk.format("GET", "/equities/" .. pick(eqs) .. "/quote", auth)
    elseif k == "bond" then
        return wrk.format("GET", "/bonds/" .. pick(bonds) .. "/analytics?settlementDate=" ..
                          as_of, auth)
    else
        wseq = wseq + 1
        local h = { ["Authorization"] = "Bearer " .. key,
                    ["Content-Type"] = "application/json",
                    ["Idempotency-Key"] = string.format("load-%d-%d-%d-%d", os.time(),
                                                        tid or 0, wseq, math.random(1e9)) }
        return wrk.format("POST", "/portfolios/" .. pick(wpfs) .. "/transactions", h,
                          '{"type":"DEPOSIT","amount":"1","note":"load"}')
    end
end

-- Every response, whatever the request (a thread runs several connections).
function response(status, headers, body)
    n_req = n_req + 1
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        if printed < 5 then
            printed = printed + 1
            io.stderr:write(string.format("non-2xx %d: %s\n", status,
                                          string.sub(body or "", 1, 300)))
        end
    end
end

function done(summary, latency, requests)
    local total_non2xx, total = 0, 0
    local mix = {}
    for _, t in ipairs(threads) do
        total_non2xx = total_non2xx + (t:get("non2xx") or 0)
        total = total + (t:get("n_req") or 0)
        for _, k in ipairs(kinds) do -- requests made per kind: globals n_<kind>
            if mix[k] == nil then
                mix[k] = 0
                for _, u in ipairs(threads) do
                    mix[k] = mix[k] + (u:get("n_" .. k) or 0)
                end
            end
        end
    end
    local parts = {}
    for k, v in pairs(mix) do
        parts[#parts + 1] = string.format('"%s":%d', k, v)
    end
    local e = summary.errors
    io.write(string.format(
        'LOAD_RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"counted":%d,' ..
        '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
        '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
        '"mix":{%s}}\n',
        summary.requests, summary.duration, total_non2xx, total,
        e.connect, e.read, e.write, e.timeout, e.status,
        latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max, table.concat(parts, ",")))
end
