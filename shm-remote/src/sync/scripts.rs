//! The Lua scripts of the Redis locks, events, semaphores and barriers: fixed strings
//! of this crate (never built from data), run with `EVALSHA` (loaded on first use and
//! again after a server restart). Each runs atomically on the server.
//!
//! Conventions: times are the server's (`TIME`, in ms), so clients need no synchronised
//! clocks; a reply is an array whose first element is a status code; a value the
//! script cannot use (a field that is no integer, a key of another Redis type) raises
//! a script error that the client maps to a typed error.

/// The server's time in ms (Redis 7 replicates scripts by effects, so `TIME` is
/// allowed in a script that writes).
macro_rules! now_ms {
    () => {
        "local __t = redis.call('TIME')\nlocal now = tonumber(__t[1]) * 1000 + math.floor(tonumber(__t[2]) / 1000)\n"
    };
}

/// Lock acquire. KEYS: owner (string with the holder's token and the lease as TTL),
/// state (hash: `fence`, `holder`, `depth`, `inconsistent`). ARGV: token, lease ms,
/// the calling thread's token prefix, `1` for a re-entrant lock.
///
/// Replies: `{0, pttl}` held by another; `{1, fence, died, inconsistent}` acquired
/// (`died` = the previous holder's lease ran out without a release); `{2, fence, depth}`
/// re-entered; `{3}` held by the calling thread (not re-entrant); `{4}` the owner key
/// has no lease (written by something else).
pub(crate) const LOCK_ACQUIRE: &str = r#"
-- The common case first: a free lock is taken by one SET NX (no GET before it).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl < 0 then return {4} end
    if string.sub(cur, 1, #ARGV[3]) == ARGV[3] then
      if ARGV[4] == '1' then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        local depth = redis.call('HINCRBY', KEYS[2], 'depth', 1)
        local fence = redis.call('HINCRBY', KEYS[2], 'fence', 0)
        return {2, fence, depth}
      end
      return {3}
    end
    return {0, pttl}
  end
  -- Expired between the two calls (cannot happen inside a script; kept for safety).
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local st = redis.call('HMGET', KEYS[2], 'holder', 'inconsistent')
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
if st[1] and st[1] ~= '' then
  redis.call('HSET', KEYS[2], 'holder', ARGV[1], 'depth', '1', 'inconsistent', '1')
  return {1, fence, 1, 1}
end
redis.call('HSET', KEYS[2], 'holder', ARGV[1], 'depth', '1')
local inc = 0
if st[2] == '1' then inc = 1 end
return {1, fence, 0, inc}
"#;

/// Lock release. KEYS: owner, state. ARGV: token, `1` for re-entrant.
/// Replies: 1 released, 2 one level of a re-entrant lock released (still held),
/// 0 the lease had run out (another holder may have the lock now).
pub(crate) const LOCK_RELEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then
  if redis.call('HGET', KEYS[2], 'holder') == ARGV[1] then
    redis.call('HSET', KEYS[2], 'holder', '', 'depth', '0')
  end
  return 0
end
if ARGV[2] == '1' then
  local d = redis.call('HINCRBY', KEYS[2], 'depth', -1)
  if d > 0 then return 2 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'holder', '', 'depth', '0')
return 1
"#;

/// Lease renewal (the keeper). KEYS: owner. ARGV: token, lease ms. 1 renewed, 0 lost.
pub(crate) const LOCK_RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Marks the lock consistent. KEYS: owner, state. ARGV: token. 1 done, 0 not the holder.
pub(crate) const LOCK_MARK_CONSISTENT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'inconsistent', '0')
  return 1
end
return 0
"#;

/// Event set. KEYS: flag (string `0`/`1`). ARGV: the channel to publish on.
pub(crate) const EVENT_SET: &str = r#"
redis.call('SET', KEYS[1], '1')
redis.call('PUBLISH', ARGV[1], '1')
return 1
"#;

/// Semaphore acquire. KEYS: state (hash `count`, `max` (0 = unbounded), `untold`),
/// holders (sorted set: member -> lease expiry in server ms). ARGV: member, lease ms.
///
/// Permits of holders whose lease ran out go back to the count first (never above
/// `max`). Replies `{0}` no permit, `{1, reclaimed}` taken (reclaimed: permits of
/// dead holders given back since the last acquirer was told).
pub(crate) const SEM_ACQUIRE: &str = concat!(
    now_ms!(),
    r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local c = redis.call('HINCRBY', KEYS[1], 'count', #dead)
  local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
  if max == nil then return redis.error_reply('ERR semaphore max is not an integer') end
  if max > 0 and c > max then redis.call('HSET', KEYS[1], 'count', max) end
  redis.call('HINCRBY', KEYS[1], 'untold', #dead)
end
local c = redis.call('HINCRBY', KEYS[1], 'count', 0)
if c <= 0 then return {0} end
redis.call('HINCRBY', KEYS[1], 'count', -1)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local told = redis.call('HINCRBY', KEYS[1], 'untold', 0)
redis.call('HSET', KEYS[1], 'untold', '0')
return {1, told}
"#
);

/// Semaphore release. KEYS: state, holders. ARGV: member held by the caller (or `''`).
/// Replies 1 released, 2 the member's lease had run out and its permit was given back
/// already (nothing changed: adding it again would make a permit out of nothing),
/// -1 over the bound (nothing changed).
pub(crate) const SEM_RELEASE: &str = r#"
if ARGV[1] ~= '' then
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'count', 1)
    return 1
  end
  return 2
end
local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
if max == nil then return redis.error_reply('ERR semaphore max is not an integer') end
local c = redis.call('HINCRBY', KEYS[1], 'count', 0)
if max > 0 and c + redis.call('ZCARD', KEYS[2]) >= max then return -1 end
redis.call('HINCRBY', KEYS[1], 'count', 1)
return 1
"#;

/// Lease renewal of sorted-set members (semaphore holders, barrier parties).
/// KEYS: the set. ARGV: lease ms, members... Members no longer there stay out.
pub(crate) const ZSET_RENEW: &str = concat!(
    now_ms!(),
    r#"
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return n
"#
);

/// Barrier arrival. KEYS: state (hash `parties`, `gen`, `count`, `broken`, and `r<gen>`
/// = `ok` / `b` for finished rounds), members (sorted set: party -> lease expiry).
/// ARGV: member, lease ms.
///
/// A registered party whose lease ran out breaks the barrier. Replies `{-1}` broken,
/// `{0, index, gen}` wait for round `gen`, `{1, index, gen}` last to arrive (the
/// round is released).
pub(crate) const BARRIER_ARRIVE: &str = concat!(
    now_ms!(),
    r#"
local parties = tonumber(redis.call('HGET', KEYS[1], 'parties') or '')
if parties == nil or parties < 1 then return redis.error_reply('ERR barrier parties missing or not a positive integer') end
if redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) > 0 then
  redis.call('HSET', KEYS[1], 'broken', '1')
end
local g = redis.call('HINCRBY', KEYS[1], 'gen', 0)
if redis.call('HGET', KEYS[1], 'broken') == '1' then return {-1} end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local c = redis.call('HINCRBY', KEYS[1], 'count', 1)
if c >= parties then
  redis.call('HSET', KEYS[1], 'count', '0', 'r' .. g, 'ok')
  redis.call('HDEL', KEYS[1], 'r' .. (g - 16))
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  return {1, c - 1, g}
end
return {0, c - 1, g}
"#
);

/// Barrier poll by a waiting party. KEYS: state, members. ARGV: member, lease ms, gen.
/// Renews the party's lease; a dead party breaks the round. Replies 1 released,
/// -1 broken, 0 still waiting.
pub(crate) const BARRIER_POLL: &str = concat!(
    now_ms!(),
    r#"
local g = ARGV[3]
local r = redis.call('HGET', KEYS[1], 'r' .. g)
if r == 'ok' then return 1 end
if r == 'b' then return -1 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1])
if redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) > 0 then
  redis.call('HSET', KEYS[1], 'broken', '1')
end
if redis.call('HGET', KEYS[1], 'broken') == '1' then
  if tostring(redis.call('HINCRBY', KEYS[1], 'gen', 0)) == g then
    redis.call('HSET', KEYS[1], 'r' .. g, 'b')
  end
  return -1
end
return 0
"#
);

/// Barrier break (a party's timeout, `abort`). KEYS: state. ARGV: gen (or `''` for the
/// current one). Replies 1 if the round had been released already (a timed-out party
/// that lost the race counts as released), 0 broken now.
pub(crate) const BARRIER_BREAK: &str = r#"
local g = ARGV[1]
if g == '' then g = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 0)) end
if redis.call('HGET', KEYS[1], 'r' .. g) == 'ok' then return 1 end
redis.call('HSET', KEYS[1], 'broken', '1', 'r' .. g, 'b')
return 0
"#;

/// Barrier reset: waiting parties get broken, the barrier is usable again, dead
/// parties are forgotten. KEYS: state, members.
pub(crate) const BARRIER_RESET: &str = concat!(
    now_ms!(),
    r#"
local g = redis.call('HINCRBY', KEYS[1], 'gen', 0)
if redis.call('HINCRBY', KEYS[1], 'count', 0) > 0 then
  redis.call('HSET', KEYS[1], 'r' .. g, 'b')
end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'count', '0', 'broken', '0')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 1
"#
);
