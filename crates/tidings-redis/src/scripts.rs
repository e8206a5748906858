//! The Lua scripts that keep a channel's log in Redis, and the parsing of their replies.
//!
//! Every write to a channel runs as one script over the channel's two keys (see
//! [`crate::keys`]), so offsets are assigned atomically and gaplessly however many nodes
//! publish, and the pub/sub notice leaves in offset order. Time comes from Redis (`TIME`), so
//! nodes with skewed clocks still expire history consistently.
//!
//! History is bounded the way the memory broker bounds it: by count (`history_size`), by bytes
//! (the message cost summed in `meta.bytes`) and by age (entries older than the TTL are trimmed
//! from the head on every call, and the stream key itself expires after the TTL). The meta key
//! outlives the stream (`position_ttl`), so offsets keep counting while history is empty.
//! A stream without its meta key is dropped: its epoch is unknown, so its past is lost.

use std::sync::LazyLock;

use bytes::Bytes;
use redis::{Script, Value};
use tidings_protocol::{ChannelName, Epoch, Message, Payload, Position};

use tidings_core::{Published, Shared};

const PRELUDE: &str = r#"
pcall(redis.replicate_commands)
local function fmt(n) return string.format('%d', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function field(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
local function offset_of(id) return tonumber(string.sub(id, 3)) end
-- The channel's epoch, top offset and history bytes; creates the channel with `candidate`
-- when it has none ('' = do not create, return nil).
local function open(meta, stream, candidate)
  local m = redis.call('HMGET', meta, 'epoch', 'top', 'bytes')
  if not m[1] then
    if candidate == '' then return nil end
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', candidate, 'top', 0, 'bytes', 0)
    return candidate, 0, 0
  end
  local bytes = tonumber(m[3]) or 0
  if redis.call('EXISTS', stream) == 0 then bytes = 0 end
  return m[1], tonumber(m[2]) or 0, bytes
end
-- Drops the oldest entry; returns its cost, or nil when the stream is empty.
local function drop_head(stream, older_than)
  local h = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #h == 0 then return nil end
  if older_than and tonumber(field(h[1][2], 't') or 0) >= older_than then return nil end
  redis.call('XTRIM', stream, 'MINID', '0-' .. fmt(offset_of(h[1][1]) + 1))
  return tonumber(field(h[1][2], 'c') or 0)
end
local function expire(stream, cutoff, bytes)
  while true do
    local c = drop_head(stream, cutoff)
    if not c then break end
    bytes = bytes - c
  end
  if redis.call('XLEN', stream) == 0 then return 0 end
  return math.max(bytes, 0)
end
"#;

/// KEYS: meta, stream. ARGV: candidate epoch, data, has event (0|1), event, binary (0|1),
/// history size, history bytes, TTL ms, position TTL ms, cost, pub/sub channel, sharded (0|1).
/// Returns `{epoch, offset, time_ms}`.
const PUBLISH: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local size, maxbytes, ttl, cost = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local now = now_ms()
local epoch, top, bytes = open(meta, stream, ARGV[1])
top = redis.call('HINCRBY', meta, 'top', 1)
bytes = expire(stream, now - ttl, bytes)
if size > 0 and cost <= maxbytes and ttl > 0 then
  local f = {'t', fmt(now), 'c', fmt(cost), 'd', ARGV[2]}
  if ARGV[5] == '1' then f[#f + 1] = 'b'; f[#f + 1] = '1' end
  if ARGV[3] == '1' then f[#f + 1] = 'e'; f[#f + 1] = ARGV[4] end
  redis.call('XADD', stream, '0-' .. fmt(top), unpack(f))
  bytes = bytes + cost
  while redis.call('XLEN', stream) > size or bytes > maxbytes do
    local c = drop_head(stream, nil)
    if not c then bytes = 0; break end
    bytes = bytes - c
  end
  redis.call('PEXPIRE', stream, ttl)
end
redis.call('HSET', meta, 'bytes', fmt(bytes), 'ttl', fmt(ttl))
redis.call('PEXPIRE', meta, math.max(ttl, tonumber(ARGV[9])))
local evlen = '-'
if ARGV[3] == '1' then evlen = fmt(#ARGV[4]) end
local notice = 'm,' .. epoch .. ',' .. fmt(top) .. ',' .. fmt(now) .. ',' .. ARGV[5] .. ','
  .. evlen .. ',' .. (ARGV[3] == '1' and ARGV[4] or '') .. ARGV[2]
if ARGV[12] == '1' then redis.call('SPUBLISH', ARGV[11], notice) else redis.call('PUBLISH', ARGV[11], notice) end
return {epoch, top, now}
"#;

/// KEYS: meta, stream. ARGV: candidate epoch ('' = do not create), mode (after|latest),
/// after, limit, TTL ms ('' = the stored one), position TTL ms.
/// Returns nil, or `{epoch, top, first, len, bytes, entries}`.
const READ: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local epoch, top, bytes = open(meta, stream, ARGV[1])
if not epoch then return false end
-- Reads write only when something changed, so they stay cheap for replicas and the AOF.
local stored = tonumber(redis.call('HGET', meta, 'ttl') or '')
local ttl = tonumber(ARGV[5]) or stored
if ttl and ttl ~= stored then redis.call('HSET', meta, 'ttl', fmt(ttl)) end
if ttl then
  local left = expire(stream, now_ms() - ttl, bytes)
  if left ~= bytes then redis.call('HSET', meta, 'bytes', fmt(left)) end
  bytes = left
end
local pttl = redis.call('PTTL', meta)
if pttl == -1 then
  redis.call('PEXPIRE', meta, math.max(ttl or tonumber(ARGV[6]), 1))
elseif ttl and pttl < ttl then
  redis.call('PEXPIRE', meta, math.max(ttl, 1))
end
local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local first = top + 1
if #head > 0 then first = offset_of(head[1][1]) end
local limit = tonumber(ARGV[4])
local entries = {}
if limit > 0 then
  if ARGV[2] == 'after' then
    if tonumber(ARGV[3]) < top then
      entries = redis.call('XRANGE', stream, '(0-' .. ARGV[3], '+', 'COUNT', ARGV[4])
    end
  else
    entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', ARGV[4])
  end
end
return {epoch, top, first, redis.call('XLEN', stream), bytes, entries}
"#;

/// KEYS: meta, stream. ARGV: new epoch, position TTL ms, pub/sub channel, sharded (0|1).
/// Returns the new epoch, or nil when it equals the current one (pick another).
const DELETE: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
if redis.call('HGET', meta, 'epoch') == ARGV[1] then return false end
redis.call('DEL', stream)
redis.call('HSET', meta, 'epoch', ARGV[1], 'top', 0, 'bytes', 0)
redis.call('PEXPIRE', meta, ARGV[2])
local notice = 'r,' .. ARGV[1] .. ',0'
if ARGV[4] == '1' then redis.call('SPUBLISH', ARGV[3], notice) else redis.call('PUBLISH', ARGV[3], notice) end
return ARGV[1]
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub(crate) static PUBLISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUBLISH));
pub(crate) static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(READ));
pub(crate) static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(DELETE));

/// A reply that does not have the shape the script returns.
pub(crate) fn shape(what: &str) -> String {
    format!("unexpected reply from Redis ({what}); another program may write Tidings' keys, give it another prefix")
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(bytes_of(other)?).ok()?.parse().ok(),
    }
}

fn epoch_of(v: &Value) -> Option<Epoch> {
    Epoch::parse(std::str::from_utf8(bytes_of(v)?).ok()?)
}

/// Parses the publish reply into `(position, time_ms)`.
pub(crate) fn parse_publish(v: &Value) -> Result<(Position, u64), String> {
    let Value::Array(a) = v else {
        return Err(shape("publish"));
    };
    match a.as_slice() {
        [e, o, t] => match (epoch_of(e), u64_of(o), u64_of(t)) {
            (Some(epoch), Some(offset), Some(t)) => Ok((Position { epoch, offset }, t)),
            _ => Err(shape("publish fields")),
        },
        _ => Err(shape("publish arity")),
    }
}

/// Parses the delete reply: the new epoch, or `None` when it collided with the old one.
pub(crate) fn parse_delete(v: &Value) -> Result<Option<Epoch>, String> {
    match v {
        Value::Nil => Ok(None),
        other => epoch_of(other).map(Some).ok_or_else(|| shape("delete")),
    }
}

/// A channel's log as the read script saw it.
pub(crate) struct Read {
    pub top: Position,
    pub first: u64,
    pub len: usize,
    pub bytes: usize,
    pub messages: Vec<Shared>,
}

/// Parses the read reply; `None` when the channel does not exist (and was not created).
pub(crate) fn parse_read(channel: &ChannelName, v: &Value) -> Result<Option<Read>, String> {
    let a = match v {
        Value::Nil => return Ok(None),
        Value::Array(a) => a,
        _ => return Err(shape("read")),
    };
    let [e, top, first, len, bytes, entries] = a.as_slice() else {
        return Err(shape("read arity"));
    };
    let (Some(epoch), Some(top), Some(first), Some(len), Some(bytes)) = (
        epoch_of(e),
        u64_of(top),
        u64_of(first),
        u64_of(len),
        u64_of(bytes),
    ) else {
        return Err(shape("read fields"));
    };
    let Value::Array(entries) = entries else {
        return Err(shape("read entries"));
    };
    let messages = entries
        .iter()
        .map(|entry| parse_entry(channel, epoch, entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Read {
        top: Position { epoch, offset: top },
        first,
        len: len as usize,
        bytes: bytes as usize,
        messages,
    }))
}

fn parse_entry(channel: &ChannelName, epoch: Epoch, v: &Value) -> Result<Shared, String> {
    let Value::Array(pair) = v else {
        return Err(shape("stream entry"));
    };
    let [id, Value::Array(fields)] = pair.as_slice() else {
        return Err(shape("stream entry arity"));
    };
    let offset = bytes_of(id)
        .and_then(|id| id.strip_prefix(b"0-"))
        .and_then(|o| std::str::from_utf8(o).ok()?.parse().ok())
        .ok_or_else(|| shape("stream entry id"))?;
    let (mut time_ms, mut data, mut binary, mut event) = (0, None, false, None);
    for kv in fields.chunks(2) {
        let [k, val] = kv else {
            return Err(shape("stream entry fields"));
        };
        match bytes_of(k) {
            Some(b"t") => time_ms = u64_of(val).unwrap_or(0),
            Some(b"d") => data = bytes_of(val).map(Bytes::copy_from_slice),
            Some(b"b") => binary = bytes_of(val) == Some(b"1"),
            Some(b"e") => {
                event = bytes_of(val)
                    .and_then(|e| std::str::from_utf8(e).ok())
                    .map(Box::from)
            }
            _ => {}
        }
    }
    let data = data.ok_or_else(|| shape("stream entry without data"))?;
    Ok(Published::new(Message {
        channel: channel.clone(),
        position: Position { epoch, offset },
        event,
        data: payload(binary, data),
        time_ms,
    }))
}

/// A payload from stored bytes; text that is not UTF-8 (never written by Tidings) becomes
/// binary rather than a panic.
pub(crate) fn payload(binary: bool, data: Bytes) -> Payload {
    if !binary && std::str::from_utf8(&data).is_ok() {
        Payload::Text(data)
    } else {
        Payload::Binary(data)
    }
}
