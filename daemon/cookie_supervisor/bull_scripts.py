"""The Lua scripts of the refresh producer: every decision several daemons must agree on.

Each runs atomically inside Redis (docs/bull.md): bull's own addJob restated, the refresh
request (coalescing, cooldown, backoff), a source's pending job, a job's state, and the outcome
bookkeeping whose backoff formula is backoff.py's (tests/test_backoff.py has Redis evaluate it).
The Python side that calls them, and reads what they answer, is bull.py.
"""

from __future__ import annotations

# bull's addJob, restated (docs/bull.md §3). Shared with the tests' producer (tests/bullkit.py).
# add_job(keys, base, custom_id, name, data, opts, timestamp, delay, priority, lifo, token)
# keys: wait, paused, meta-paused, id, delayed, priority. Returns {jobId, created 1|0}.
ADD_JOB_LUA = """
local function add_job(k, base, custom_id, name, data, opts, ts, delay, priority, lifo, token)
  local n = redis.call("INCR", k[4])
  local job_id = tostring(n)
  if custom_id ~= "" then
    job_id = custom_id
    if redis.call("EXISTS", base .. job_id) == 1 then
      redis.call("PUBLISH", base .. "duplicated@" .. token, job_id)
      return {job_id, 0}
    end
  end
  redis.call("HSET", base .. job_id, "name", name, "data", data, "opts", opts,
             "timestamp", ts, "delay", delay, "priority", priority)
  delay = tonumber(delay)
  if delay > 0 then
    -- numbers, not strings: Lua's tostring would round a 16-digit score to 14 digits
    local due = tonumber(ts) + delay
    redis.call("ZADD", k[5], due * 0x1000 + bit.band(n, 0xfff), job_id)
    redis.call("PUBLISH", k[5], due)
    return {job_id, 1}
  end
  local target = k[1]
  if redis.call("EXISTS", k[3]) == 1 then target = k[2] end
  priority = tonumber(priority)
  if priority == 0 then
    redis.call(lifo == "1" and "RPUSH" or "LPUSH", target, job_id)
  else
    redis.call("ZADD", k[6], priority, job_id)
    local count = redis.call("ZCOUNT", k[6], 0, priority)
    local len = redis.call("LLEN", target)
    local pivot = redis.call("LINDEX", target, len - (count - 1))
    if pivot then
      redis.call("LINSERT", target, "BEFORE", pivot, job_id)
    else
      redis.call("RPUSH", target, job_id)
    end
  end
  redis.call("PUBLISH", k[1] .. "ing@" .. token, job_id)
  return {job_id, 1}
end
"""

# Reading jobs (docs/bull.md §4, §7). k: wait, paused, meta-paused, id, delayed, priority, active.
READ_LUA = """
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- pending: in wait, paused or active, or in delayed (a delayed add, or between retries)
local function is_pending(k, job_id)
  return redis.call("ZSCORE", k[5], job_id)
      or redis.call("LPOS", k[1], job_id) or redis.call("LPOS", k[2], job_id)
      or redis.call("LPOS", k[7], job_id)
end

-- data.source of a job: the string, false when it has none (not ours), nil when there is no job
local function job_source(base, job_id)
  local data = redis.call("HGET", base .. job_id, "data")
  if not data then return nil end
  local ok, decoded = pcall(cjson.decode, data)
  if ok and type(decoded) == "table" and type(decoded.source) == "string" then
    return decoded.source
  end
  return false
end

-- a pending job whose data has no source: another producer's (the backend's legacy enqueue)
local function foreign_pending(k, base, limit)
  for _, list in ipairs({k[1], k[2], k[7]}) do
    for _, id in ipairs(redis.call("LRANGE", list, 0, limit - 1)) do
      if job_source(base, id) == false then return id end
    end
  end
  for _, id in ipairs(redis.call("ZRANGE", k[5], 0, limit - 1)) do
    if job_source(base, id) == false then return id end
  end
  return nil
end

-- when the marker's job ended, on Redis's clock: noted the first time anyone looks after it
-- ended. Never the worker's finishedOn: an extractor host's clock may be minutes off.
local function noted_end(base, marker, last, now)
  local ended = tonumber(redis.call("HGET", marker, "ended") or "")
  if ended then return ended end
  if last and redis.call("HEXISTS", base .. last, "finishedOn") == 1 then
    redis.call("HSET", marker, "ended", now)
    return now
  end
  return nil
end

-- the marker's job if it is still this source's: the id may have been reused after an obliterate
local function own_job(base, marker, source)
  local last = redis.call("HGET", marker, "job")
  if last and job_source(base, last) == source then return last end
  return nil
end
"""

# keys: the 7 job keys, marker, outcomes. ARGV: base, name, data, opts, ts, token, cooldown ms,
# force, source, default_source, scan limit. Returns {jobId|false, state, ms left}.
REFRESH = (
    ADD_JOB_LUA
    + READ_LUA
    + """
local k, base, marker, source = KEYS, ARGV[1], KEYS[8], ARGV[9]
local last = own_job(base, marker, source)
if last and is_pending(k, last) then return {last, "coalesced", 0} end
if ARGV[10] == "1" then
  local other = foreign_pending(k, base, tonumber(ARGV[11]))
  if other then return {other, "coalesced", 0} end
end
local m = redis.call("HMGET", marker, "job", "ended", "backoff_until")
if ARGV[8] ~= "1" then
  local now = now_ms()
  -- the last refresh's end as Redis saw it; a job that vanished unfinished has none, and
  -- imposes no cooldown
  local ended = noted_end(base, marker, last, now)
  local cooling = ended and ended + tonumber(ARGV[7]) - now or 0
  local backing = (tonumber(m[3] or "") or 0) - now
  if backing > 0 and backing >= cooling then return {last or false, "backoff", backing} end
  if cooling > 0 then return {last or false, "cooldown", cooling} end
end
local added = add_job(k, base, "", ARGV[2], ARGV[3], ARGV[4], ARGV[5], "0", "0", "0", ARGV[6])
redis.call("HSET", marker, "job", added[1], "created", ARGV[5])
redis.call("HDEL", marker, "ended")
redis.call("ZREM", KEYS[9], added[1])  -- an id reused after an obliterate is a new job
return {added[1], "enqueued", 0}
"""
)

# keys: the 7 job keys, marker. ARGV: base, source, default_source, scan limit.
PENDING = (
    READ_LUA
    + """
local last = own_job(ARGV[1], KEYS[8], ARGV[2])
if last and is_pending(KEYS, last) then return last end
if last then noted_end(ARGV[1], KEYS[8], last, now_ms()) end
if ARGV[3] == "1" then return foreign_pending(KEYS, ARGV[1], tonumber(ARGV[4])) or false end
return false
"""
)

# keys: the 7 job keys, completed, failed. ARGV: base, job id, source or "".
JOB_STATE = (
    READ_LUA
    + """
local base, id = ARGV[1], ARGV[2]
local source = job_source(base, id)
if source == nil or (ARGV[3] ~= "" and source and source ~= ARGV[3]) then return "missing" end
if redis.call("ZSCORE", KEYS[8], id) then return "completed" end
if redis.call("ZSCORE", KEYS[9], id) then return "failed" end
if is_pending(KEYS, id) then return "pending" end
local done = redis.call("HMGET", base .. id, "finishedOn", "returnvalue")
if done[1] then return done[2] and "completed" or "failed" end
return "missing"  -- a hash in no list: nothing will ever run it
"""
)

# keys: marker, outcomes. ARGV: base, job id, ok, base ms, max ms, kept.
# Returns {failures, backoff_until ms|false}.
OUTCOME = (
    READ_LUA
    + """
local marker, base, id = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
if redis.call("ZADD", KEYS[2], "NX", now, id) == 1 then
  redis.call("ZREMRANGEBYRANK", KEYS[2], 0, -1 - tonumber(ARGV[6]))
  if ARGV[3] == "1" then
    redis.call("HSET", marker, "failures", 0)
    redis.call("HDEL", marker, "backoff_until")
  else
    local n = redis.call("HINCRBY", marker, "failures", 1)
    local wait = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - 1))
    redis.call("HSET", marker, "backoff_until", math.floor(now + wait))
  end
  if redis.call("HGET", marker, "job") == id then
    redis.call("HSETNX", marker, "ended", now)  -- Redis's clock, not the worker's
  end
end
local state = redis.call("HMGET", marker, "failures", "backoff_until")
return {tonumber(state[1] or 0), state[2] or false}
"""
)
