//! The Lua scripts of the Redis queues: fixed strings of this crate, run with
//! `EVALSHA`. A queue is a stream (`XADD` entries with one field `d`, the bincode
//! bytes) read through one consumer group `g`, plus a config hash (`maxsize`,
//! `closed`, `lost`).
//!
//! The config hash counts the messages not yet delivered (`queued`, changed by the
//! put and get scripts only); the group's pending list holds the ones delivered and
//! not acknowledged, so `queued + pending` is the number of unfinished messages.
//! Acknowledged entries are not deleted one by one (`XDEL` costs ~16 us per entry
//! against ~0.7 us for `XACK`): each get trims the stream below its oldest pending
//! entry with `XTRIM MINID ~`, which frees whole nodes (100 entries) once all of
//! theirs are older; the exact form also marks single entries deleted inside the
//! oldest node, as `XDEL` does (~40 us per get measured, against ~1 us). A plain
//! `Queue` reads with `NOACK`: its entries never enter the pending list.

/// Put. KEYS: stream, conf. ARGV: encoded messages. Puts as many as fit under
/// `maxsize` (all or none of them when `ARGV` is one message). Replies the number put,
/// or -1 when the queue is closed.
pub(crate) const PUT: &str = r#"
local conf = redis.call('HMGET', KEYS[2], 'closed', 'maxsize')
if conf[1] == '1' then return -1 end
local maxsize = tonumber(conf[2] or '0')
if maxsize == nil then return redis.error_reply('ERR queue maxsize is not an integer') end
local n = #ARGV
if maxsize > 0 then
  local room = maxsize - redis.call('HINCRBY', KEYS[2], 'queued', 0)
  if room < n then n = math.max(room, 0) end
end
for i = 1, n do
  redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'queued', n) end
return n
"#;

/// Get. KEYS: stream, conf. ARGV: consumer, count, `1` for a plain `Queue` (read with
/// `NOACK`: nothing pending, ever), lease ms (a joinable queue first claims
/// entries of other consumers idle that long).
///
/// Replies `{closed, id, deliveries, payload, ...}`; a payload is nil for an entry
/// without a `d` field (written by something else): such entries are acknowledged
/// and counted in `lost` here. Then trims the stream below its oldest pending entry
/// (everything older is acknowledged).
pub(crate) const GET: &str = r#"
local n = tonumber(ARGV[2])
local out = {0}
local ack = {}
local got = 0
local function take(e, deliveries)
  local f = e[2]
  local payload = false
  if type(f) == 'table' and #f == 2 and f[1] == 'd' then payload = f[2] end
  table.insert(out, e[1])
  table.insert(out, deliveries)
  table.insert(out, payload)
  if ARGV[3] ~= '1' and payload == false then table.insert(ack, e[1]) end
  if payload == false then redis.call('HINCRBY', KEYS[2], 'lost', 1) end
  got = got + 1
end
-- A plain queue acknowledges in this script: it has nothing pending to claim.
if ARGV[3] ~= '1' then
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], 'g', ARGV[1], ARGV[4], '0-0', 'COUNT', n)
  for _, e in ipairs(claimed[2]) do
    local p = redis.call('XPENDING', KEYS[1], 'g', e[1], e[1], 1)
    local d = 1
    if p[1] then d = p[1][4] end
    take(e, d)
  end
end
local last = nil
if got < n then
  local r
  if ARGV[3] == '1' then
    -- NOACK: a plain queue's entries never enter the pending list (no XACK after).
    r = redis.call('XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', n - got, 'NOACK', 'STREAMS', KEYS[1], '>')
  else
    r = redis.call('XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', n - got, 'STREAMS', KEYS[1], '>')
  end
  if r then
    local new = r[1][2]
    for _, e in ipairs(new) do take(e, 1); last = e[1] end
    if #new > 0 then
      if redis.call('HINCRBY', KEYS[2], 'queued', -#new) < 0 then
        redis.call('HSET', KEYS[2], 'queued', 0)
      end
    end
  end
end
if #ack > 0 then
  redis.call('XACK', KEYS[1], 'g', unpack(ack))
end
if ARGV[3] == '1' then
  if last then redis.call('XTRIM', KEYS[1], 'MINID', '~', last) end
else
  local p = redis.call('XPENDING', KEYS[1], 'g')
  if p[1] > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', p[2])
  elseif last then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', last)
  end
end
if got == 0 and redis.call('HGET', KEYS[2], 'closed') == '1' then out[1] = 1 end
return out
"#;

/// Acknowledge (`task_done`, or a message that does not decode). KEYS: stream.
/// ARGV: entry ids. Replies how many were still pending. (The next get trims.)
pub(crate) const ACK: &str = r#"
return redis.call('XACK', KEYS[1], 'g', unpack(ARGV))
"#;

/// Lease renewal of the entries a live consumer holds (its keeper): resets their idle
/// time without counting a delivery, only for entries still pending for this consumer
/// (one claimed by another consumer after our lease ran out stays theirs). KEYS:
/// stream. ARGV: consumer, ids... Replies how many were renewed.
pub(crate) const RENEW: &str = r#"
local n = 0
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], 'g', ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], 'g', ARGV[1], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
"#;

/// Sizes. KEYS: stream, conf. Replies `{queued, pending, closed, lost}`.
pub(crate) const SIZES: &str = r#"
local pending = redis.call('XPENDING', KEYS[1], 'g')[1]
local c = 0
if redis.call('HGET', KEYS[2], 'closed') == '1' then c = 1 end
local lost = tonumber(redis.call('HGET', KEYS[2], 'lost') or '0') or 0
return {redis.call('HINCRBY', KEYS[2], 'queued', 0), pending, c, lost}
"#;
