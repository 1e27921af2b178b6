/**
 * Lua scripts of the Redis token store. Each runs atomically on the server (Redis runs one
 * script at a time), which is what makes the lease and the fenced write safe across processes.
 */

/**
 * Lua functions shared by the scripts. Lua numbers are doubles, so fencing numbers stay below
 * 2^52, where every whole number and its successor are exact. `storedFence` returns the fencing
 * number of the record stored at `key`, or nil when there is none or it is not a whole number
 * from 1 to 2^52. A value without such a fence, such as garbage from another process, counts as
 * no record and is replaced by the next write.
 */
const storedFenceFunction = `
local maxFence = 2^52
local function storedFence(key)
  local current = redis.pcall('GET', key)
  if type(current) ~= 'string' then return nil end
  local ok, stored = pcall(cjson.decode, current)
  if not ok or type(stored) ~= 'table' then return nil end
  local fence = tonumber(stored.fence)
  if fence == nil or fence ~= math.floor(fence) then return nil end
  if fence < 1 or fence >= maxFence then return nil end
  return fence
end
`;

/**
 * Takes the lease. KEYS: lock, fence counter, token. ARGV: owner token, lease time in
 * milliseconds. Returns the new fencing number, or nil while another owner holds the lock.
 * The number is above the stored token's, even when the counter was lost (evicted, deleted or
 * reset by a restart) while the token stayed, so that the new holder's write is not dropped. A
 * counter that is not a number, or not below 2^52, is started again.
 */
export const acquireScript = `${storedFenceFunction}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local fence = redis.pcall('INCR', KEYS[2])
if type(fence) ~= 'number' or fence >= maxFence then fence = 1 end
local stored = storedFence(KEYS[3])
if stored ~= nil and stored >= fence then fence = stored + 1 end
redis.call('SET', KEYS[2], string.format('%d', fence))
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
`;

/**
 * Stores a token unless a token written under a newer lease is stored already. KEYS: token,
 * fence counter. ARGV: record JSON, the lease's fencing number, time to live in milliseconds.
 * Returns 1 when stored and 0 when dropped. A stored value without a valid fence is replaced.
 * The counter is raised to the written number, so that after Redis lost the counter (a restart
 * without persistence) new leases still get numbers above every stored token's.
 */
export const writeScript = `${storedFenceFunction}
local fence = tonumber(ARGV[2])
local stored = storedFence(KEYS[1])
if stored ~= nil and stored > fence then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
local counter = tonumber(redis.pcall('GET', KEYS[2]))
if counter == nil or counter < fence then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
`;

/** Deletes the lock only while this owner holds it. KEYS: lock. ARGV: owner token. */
export const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;
