-- Runs an Argo CD health script the way Argo CD does: the live object is the global `obj`,
-- and the script's chunk returns { status = ..., message = ... }.
-- Usage: lua5.1 harness.lua <object.lua> <health.lua>
-- <object.lua> is a chunk that returns the object as a Lua table.
local object_chunk = assert(loadfile(arg[1]))
obj = object_chunk()
local health_chunk = assert(loadfile(arg[2]))
local hs = health_chunk()
if type(hs) ~= "table" then
  io.stderr:write("health script returned " .. type(hs) .. ", not a table\n")
  os.exit(2)
end
io.write("status=" .. tostring(hs.status) .. "\n")
io.write("message=" .. tostring(hs.message) .. "\n")
