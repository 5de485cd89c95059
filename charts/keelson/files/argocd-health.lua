-- Argo CD health check for keelson.dev/Application (Lua 5.1).
-- Argo CD sets the global `obj` to the live Application and reads the returned table.
-- The order of the checks below is the contract; charts/tests/test_argocd_health.py runs
-- every branch with lua5.1.
local hs = {}

local function find_condition(conditions, wanted)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if type(condition) == "table" and condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function message_of(condition, fallback)
  if condition ~= nil and type(condition.message) == "string" and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

local function waiting_for_generation()
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "waiting for the operator to observe the Application"
  end
  return hs
end

local status = obj.status
if type(status) ~= "table" then
  return waiting_for_generation()
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return waiting_for_generation()
end

local degraded = find_condition(status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, "the Application is degraded")
  return hs
end

-- Reasons that waiting does not fix: an invalid spec, a child owned by someone else, a rollout
-- past its progress deadline.
local stuck_reasons = {
  InvalidSpec = "the Application's spec is invalid",
  Conflict = "a child Keelson would create is owned by someone else",
  RolloutStuck = "a rollout exceeded its progress deadline",
}

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "False" and stuck_reasons[ready.reason] ~= nil then
  hs.status = "Degraded"
  hs.message = message_of(ready, stuck_reasons[ready.reason])
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "the Application is ready")
  return hs
end

-- A workload whose pods say why they do not run (ImagePullBackOff, CrashLoopBackOff, ...): still
-- Progressing (the pods may recover), with the pods' reason, which Ready's message carries.
if ready ~= nil and ready.status == "False" and ready.reason == "WorkloadNotReady" then
  hs.status = "Progressing"
  hs.message = message_of(ready, "a workload is not ready")
  return hs
end

local progressing = find_condition(status.conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = message_of(progressing, "the Application is rolling out")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "waiting for the Application to become ready")
return hs
