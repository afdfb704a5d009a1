-- The flood of tests/flood.sh: GET with well-formed random tokens ({id}|{40 letters and
-- digits}), as fast as wrk goes; every answer must be the documented 401.
--
--   wrk ... -s flood.lua URL -- MODE SIZE SEED WINDOW MAX_PER_THREAD
--
-- MODE "windows": the tokens change every WINDOW seconds (of the wall clock): window w
--   sends only the SIZE tokens of set w, cycled, so that every repeat of a token comes
--   within WINDOW (< the store's 5 s cache time to live) of its first send.
-- MODE "set": one fixed set of SIZE tokens, cycled for the whole flood.
-- Each wrk thread cycles the set from an offset of its own; the sets are the same in
-- every thread (math.random seeded by SEED and the set's number), so that the same token
-- comes from several connections. done() prints the number of distinct tokens sent.
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local UNAUTHENTICATED = '{"message":"Unauthenticated."}'
local UNAVAILABLE = '{"message":"Service Unavailable."}'

local function make_set(number)
  math.randomseed(seed * 1000 + number)
  local set = {}
  local chars = {}
  for i = 1, size do
    for c = 1, 40 do
      local k = math.random(1, #ALPHABET)
      chars[c] = string.sub(ALPHABET, k, k)
    end
    set[i] = wrk.format("GET", wrk.path, {
      ["Authorization"] = "Bearer " .. (number * size + i) .. "|" .. table.concat(chars) })
  end
  return set
end

function init(args)
  mode, size, seed, window, max_responses = args[1], tonumber(args[2]), tonumber(args[3]),
    tonumber(args[4]), tonumber(args[5])
  offset = (index * 7919) % size
  current, requests, sent = nil, nil, 0
  if mode == "set" then
    current, requests = 0, make_set(0)
  end
  log = ""  -- "set:offset:count;" for each set this thread sent from
  ok_401, unavailable, outside = 0, 0, 0
  first_outside = ""
end

local function close_set()
  if current ~= nil and sent > 0 then
    log = log .. current .. ":" .. offset .. ":" .. sent .. ";"
  end
end

function request()
  local number = 0
  if mode == "windows" then
    number = math.floor(os.time() / window)
  end
  if number ~= current then
    close_set()
    current, requests, sent = number, make_set(number), 0
  end
  local request = requests[((offset + sent) % size) + 1]
  sent = sent + 1
  return request
end

function response(status, headers, body)
  if status == 401 and body == UNAUTHENTICATED then
    ok_401 = ok_401 + 1
  elseif status == 503 and body == UNAVAILABLE then
    unavailable = unavailable + 1
  else
    outside = outside + 1
    if first_outside == "" then
      first_outside = status .. " " .. string.sub(body, 1, 200)
    end
  end
  if ok_401 + unavailable + outside >= max_responses then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  -- Distinct tokens: for each set, the union of what each thread covered.
  local covered = {}
  local set_size = threads[1]:get("size")
  local total = { ok_401 = 0, unavailable = 0, outside = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    local log = thread:get("log")
    local current, offset, sent = thread:get("current"), thread:get("offset"), thread:get("sent")
    if current ~= nil and sent > 0 then
      log = log .. current .. ":" .. offset .. ":" .. sent .. ";"
    end
    for set, start, count in string.gmatch(log, "(%d+):(%d+):(%d+);") do
      set, start, count = tonumber(set), tonumber(start), tonumber(count)
      covered[set] = covered[set] or {}
      for j = 0, math.min(count, set_size) - 1 do
        covered[set][(start + j) % set_size] = true
      end
    end
    for name, _ in pairs(total) do
      total[name] = total[name] + thread:get(name)
    end
    if first == "" then
      first = thread:get("first_outside")
    end
  end
  local distinct, sets = 0, 0
  for _, set in pairs(covered) do
    sets = sets + 1
    for _ in pairs(set) do
      distinct = distinct + 1
    end
  end
  local errors = summary.errors
  print(string.format("FLOOD requests %d", summary.requests))
  print(string.format("FLOOD seconds %.2f", summary.duration / 1e6))
  print(string.format("FLOOD distinct %d", distinct))
  print(string.format("FLOOD sets %d", sets))
  print(string.format("FLOOD ok_401 %d", total.ok_401))
  print(string.format("FLOOD unavailable_503 %d", total.unavailable))
  print(string.format("FLOOD outside %d", total.outside))
  print(string.format("FLOOD socket_errors %d", errors.connect + errors.read + errors.write + errors.timeout))
  print(string.format("FLOOD p50_ms %.3f", latency:percentile(50) / 1000))
  print(string.format("FLOOD p99_ms %.3f", latency:percentile(99) / 1000))
  print(string.format("FLOOD max_ms %.3f", latency.max / 1000))
  if first ~= "" then
    print("FLOOD first_outside " .. first)
  end
end
