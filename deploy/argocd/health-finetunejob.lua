-- Argo CD health check for FineTuneJob (finetune.dev/v1alpha1).
--
-- Install it under the key resource.customizations.health.finetune.dev_FineTuneJob of the
-- argocd-cm ConfigMap (docs/gitops.md). Argo CD runs it with the live object as `obj`.
--
-- Mapping (status.phase is written by the operator, one status write per reconcile pass):
--   Succeeded                     -> Healthy
--   Pending, Created, Running,
--   Restarting, (no status yet)   -> Progressing
--   Suspended                     -> Suspended
--   Failed                        -> Degraded
--   Running with Stalled=True     -> Degraded (steps stopped advancing)
-- The message is the matching condition's message, else the progress (step, percent).

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function progress_message(status)
  local p = status.progress
  if p == nil or p.step == nil then
    return nil
  end
  local text = "step " .. tostring(p.step)
  if p.totalSteps ~= nil then
    text = text .. "/" .. tostring(p.totalSteps)
  end
  if p.percent ~= nil then
    text = text .. string.format(" (%.0f%%)", p.percent)
  end
  return text
end

local function message_of(status, type_, fallback)
  local c = condition(status, type_)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local hs = {}
local status = obj.status

if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the job"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message_of(status, "Succeeded", "Fine-tuning succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(status, "Failed", "Fine-tuning failed")
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = message_of(status, "Suspended", "Suspended (spec.runPolicy.suspend is true)")
elseif phase == "Running" or phase == "Pending" or phase == "Created" or phase == "Restarting" then
  local stalled = condition(status, "Stalled")
  if stalled ~= nil and stalled.status == "True" then
    hs.status = "Degraded"
    hs.message = message_of(status, "Stalled", "Training steps stopped advancing")
  else
    hs.status = "Progressing"
    hs.message = message_of(status, phase, nil) or progress_message(status) or phase
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
