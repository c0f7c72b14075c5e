-- The requests of one `bench.http_load` scenario, for wrk (`wrk -s bench/wrk/prm.lua`).
--
-- Environment: WRK_DATA (a Lua file `bench.http_load` writes: the token and ids and words of the seeded
-- data), WRK_SCENARIO (get_patient, bare_get_patient, list, search, create, update, today, mixed) and WRK_PREFIX
-- (the API's path prefix). Every answer outside 2xx counts as an error. `done` prints one line,
-- `WRK_JSON {...}`, with the counts and the latency percentiles in microseconds.

local data = dofile(os.getenv("WRK_DATA"))
local scenario = os.getenv("WRK_SCENARIO") or "get_patient"
local prefix = os.getenv("WRK_PREFIX") or "/api/v1/prm"
local headers = { ["Authorization"] = "Bearer " .. data.token, ["Content-Type"] = "application/json" }

local threads = {}
local next_id = 1
errors = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id * 7919)
  serial = 0
end

local function pick(list)
  return list[math.random(#list)]
end

local function get(path)
  return wrk.format("GET", prefix .. path, headers)
end

local function get_patient()
  return get("/patients/" .. pick(data.patients))
end

local function list_patients()
  return get("/patients?page=" .. math.random(50) .. "&page_size=20")
end

local function search_patients()
  return get("/patients/search?type=name&limit=20&query=" .. pick(data.names))
end

local function search_messages()
  return get("/communications/search?page_size=20&query=" .. pick(data.words))
end

local function create_patient()
  serial = serial + 1
  local body = string.format(
    '{"first_name":"%s","last_name":"%s","date_of_birth":"19%02d-%02d-%02d","phone_primary":"+1415555%04d",'
      .. '"email_primary":"bench.%d.%d@example.com","preferred_channel":"sms"}',
    pick(data.names), pick(data.names), math.random(30, 99), math.random(12), math.random(28),
    math.random(100, 199), thread_id, serial)
  return wrk.format("POST", prefix .. "/patients", headers, body)
end

local function update_patient()
  local body = string.format('{"city":"Town %d","preferred_channel":"email"}', math.random(1000))
  return wrk.format("PATCH", prefix .. "/patients/" .. pick(data.patients), headers, body)
end

-- Today's appointments: the whole clinic's day, one practitioner's or one location's, a third each.
local function todays_appointments()
  local r = math.random(3)
  if r == 1 then return get("/appointments/today")
  elseif r == 2 then return get("/appointments/today?practitioner_id=" .. pick(data.practitioners))
  else return get("/appointments/today?location_id=" .. pick(data.locations))
  end
end

-- 70% reads of patients, appointments and messages; 20% searches; 10% writes.
local function mixed()
  local r = math.random(100)
  if r <= 30 then return get_patient()
  elseif r <= 50 then return get("/appointments/" .. pick(data.appointments))
  elseif r <= 70 then return get("/communications/" .. pick(data.messages))
  elseif r <= 80 then return search_patients()
  elseif r <= 90 then return search_messages()
  elseif r <= 95 then return create_patient()
  else return update_patient()
  end
end

local scenarios = {
  get_patient = get_patient,
  bare_get_patient = function() return wrk.format("GET", "/patients/" .. pick(data.patients)) end,
  list = list_patients,
  search = search_patients,
  create = create_patient,
  update = update_patient,
  today = todays_appointments,
  mixed = mixed,
}
request = scenarios[scenario]

function response(status, headers, body)
  if status < 200 or status > 299 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local non2xx = 0
  for _, thread in ipairs(threads) do
    non2xx = non2xx + thread:get("errors")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,'
      .. '"p50":%d,"p95":%d,"p99":%d,"mean":%.1f,"max":%d}\n',
    summary.requests, summary.duration, non2xx, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
