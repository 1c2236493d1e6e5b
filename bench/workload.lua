-- The benchmark's fixed mixed workload for wrk: list (limit 20) 60%, fetch 20%, create 10%,
-- update 5%, delete 5%; valid requests with a bearer token. bench/run.py writes the ids of the
-- seeded business into bench_ids.lua before each run. Deletes take credits this thread created,
-- so the seeded ones stay for fetch and update.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local ids = require("bench_ids")

local base = "/v1/businesses/" .. ids.business .. "/invoices/customer-credits"
local headers = {["Authorization"] = "Bearer bench-token", ["Content-Type"] = "application/json"}
local created = {}
local counter = 0

local create_body = '{"customer_id":"' .. ids.customer .. '","memo":"bench","line_items":[{"amount":1500,'
  .. '"revenue_account_identifier":{"type":"StableName","stable_name":"SALES"}}]}'
local update_body = '{"memo":"bench update"}'

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(seed or 1)
end

local function any_credit()
  return ids.credits[math.random(#ids.credits)]
end

function request()
  local roll = math.random(100)
  if roll <= 60 then
    return wrk.format("GET", base .. "?limit=20", headers)
  elseif roll <= 80 then
    return wrk.format("GET", base .. "/" .. any_credit(), headers)
  elseif roll <= 90 then
    return wrk.format("POST", base, headers, create_body)
  elseif roll <= 95 then
    return wrk.format("PATCH", base .. "/" .. any_credit(), headers, update_body)
  elseif #created > 0 then
    return wrk.format("DELETE", base .. "/" .. table.remove(created), headers)
  else
    return wrk.format("GET", base .. "/" .. any_credit(), headers)
  end
end

function response(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"data":{"id":"([0-9a-f%-]+)"')
    if id then
      table.insert(created, id)
    end
  end
end
