"""The Redis schema: every key, channel and Lua script newswire uses.

Public (CONTRACT.md; other programs read these)::

    {p}:article:<id>      hash        one stored article
    {p}:recent            sorted set  article id -> published time, epoch seconds
    {p}:new               channel     JSON per new story
    {p}:stream            stream      one entry per stored article, type new|duplicate

Internal (the README documents them; free to change between versions)::

    {p}:url:<h>           string  article id stored for canonical URL hash <h>
    {p}:fp:<fingerprint>  string  first article id with this exact fingerprint
    {p}:seen:url:<h>      string  RQ job id of an entry already enqueued, by canonical URL
    {p}:seen:guid:<h>     string  the same, by the entry's guid
    {p}:feed:<name>       hash    polling state of a feed
    {p}:feeds:due         sorted set  feed name -> next check, epoch seconds (and poll lease);
                                      every configured feed is in it (0: due at once)
    {p}:expiry            sorted set  article id -> epoch when it leaves ``{p}:recent``
    {p}:stats             hash    counters for ``newswire status``
    {p}:lsh:<v>:<band>    sorted set  near-duplicate index: ids of the articles whose MinHash
                                  band has this value -> when they expire (capped)
    {p}:term:<v>:<term>   sorted set  story index: ids of the articles posted under this
                                  entity or figure -> when they expire (capped)
    {p}:site:<v>:<site>   hash    learned boilerplate of a site: ``pages`` -> new articles
                                  counted, <block id> -> pages that had that paragraph

Every key that belongs to one article expires with it (retention window).
"""

from __future__ import annotations

from dataclasses import dataclass

from .neardup import MINHASH_VERSION
from .siteblocks import BLOCK_VERSION
from .stories import TERMS_VERSION
from .urls import url_hash


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``news`` unless ``NEWSWIRE_PREFIX`` says otherwise)."""

    prefix: str = "news"

    @property
    def recent(self) -> str:
        return f"{self.prefix}:recent"

    @property
    def new_channel(self) -> str:
        return f"{self.prefix}:new"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:stream"

    @property
    def feeds_due(self) -> str:
        return f"{self.prefix}:feeds:due"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}:expiry"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def article(self, article_id: str) -> str:
        return f"{self.prefix}:article:{article_id}"

    def url(self, canonical_url: str) -> str:
        return f"{self.prefix}:url:{url_hash(canonical_url)}"

    def fingerprint(self, fingerprint: str) -> str:
        return f"{self.prefix}:fp:{fingerprint}"

    def seen_url(self, canonical_url: str) -> str:
        return f"{self.prefix}:seen:url:{url_hash(canonical_url)}"

    def seen_guid(self, guid: str) -> str:
        return f"{self.prefix}:seen:guid:{url_hash(guid)}"

    def feed(self, name: str) -> str:
        return f"{self.prefix}:feed:{name}"

    def site(self, site: str) -> str:
        return f"{self.prefix}:site:{BLOCK_VERSION}:{site}"

    def band(self, band: str) -> str:
        """A near-duplicate bucket: one LSH band value (``newswire.neardup``)."""
        return f"{self.prefix}:lsh:{MINHASH_VERSION}:{band}"

    def term(self, term: str) -> str:
        """A story-index posting list: one entity or figure (``newswire.stories``)."""
        return f"{self.prefix}:term:{TERMS_VERSION}:{term[:80]}"


def article_id(canonical_url: str) -> str:
    """The id of the article an entry becomes: stable, so a retried job finds itself."""
    return url_hash(canonical_url)[:20]


def job_id(canonical_url: str) -> str:
    """The RQ job id for an entry: one job per canonical URL, whoever enqueues it."""
    return f"article-{url_hash(canonical_url)}"


#: The one atomic step that decides new or duplicate, stores, indexes and announces.
#:
#: It also finds the candidates: the members of the article's near-duplicate buckets,
#: and of its story postings those sharing enough terms, counted here so that only these
#: few ids travel. A candidate the worker has not seen (ARGV 12) makes it answer
#: ``retry`` without writing, with the candidates and their counts; the worker verifies
#: them and calls again with what it saw and the match it proposes. So an article with no
#: candidate at all takes one call, one with candidates two, and one whose candidates
#: another worker indexed between the two calls a third. Exact keys are
#: decided here. Two copies committed at once are thus announced once.
#:
#: The next call does not read the buckets and postings again: only commits change
#: them (each one adds its own id, and one stream entry), so it looks at the articles
#: committed since the stream id the reading was made at (ARGV 23), up to 16 of them,
#: and reads everything again only if one of them is an unseen candidate, or there were
#: more. Reading is the larger part of the script's work: an article of a busy site
#: meets some 280 members in its 32 zsets.
#:
#: KEYS: 1 article hash, 2 url index of the entry link, 3 url index of the page's
#:       own canonical URL (may equal 2), 4 fingerprint index, 5 recent zset, 6 stream,
#:       7 stats hash, 8 expiry zset, 9 the site's learned-blocks hash,
#:       10 .. 9+nb near-duplicate band zsets, then nt story-term zsets
#: ARGV: 1 article id, 2 published epoch, 3 ttl seconds, 4 stream maxlen, 5 channel,
#:       6 now epoch, 7 article key prefix ("news:article:"), 8 the page's block ids
#:       (space-separated, may be empty), 9 most blocks kept per site,
#:       10 nb, 11 nt, 12 candidate ids the worker has seen (space-separated; none on
#:       its first call), 13 shared terms that make a posting a story candidate, 14 "1"
#:       to check the candidates (``0`` only for bulk loads whose decisions are known),
#:       15 most members kept per band/term zset, 16 proposed near-duplicate id, 17 its
#:       similarity, 18 proposed same-story article id, 19 its score, 20 the evidence
#:       of the match, 21 pages that make a block learned boilerplate (``0``: don't
#:       check), 22 the page's block ids the worker took as learned (space-separated),
#:       23 the stream id its candidates were read at ('' on a first call), 24 most
#:       candidates verified of each kind, 25.. field, value pairs of the article
#: Returns {type, id, story, duplicate_of, method, stream_id, similarity}; type
#: "exists" when the entry's URL was stored before (a retried job): then nothing at all
#: is written; "retry" when the worker has candidates to verify (or a proposed match
#: expired): nothing is written either, and six more elements follow: the band members
#: with the bands each shares, the posting members with the terms each shares (flat),
#: the stream id they were read at (for ARGV 23 of the next call), the best of the band
#: members and of the posting members (ARGV 24 of each, most shared first, ties by
#: id), and for each of those still stored its id, text, published, entities and
#: figures (flat);
#: "learned" when the worker took other blocks of the page as the site's boilerplate than
#: its counts make so (ARGV 21, 22): nothing is written, and one more element follows,
#: the page's blocks that are. The worker cleans the text again and calls again.
COMMIT_ARTICLE = r"""
local existing = redis.call('GET', KEYS[2])
if existing then
  local known_story = redis.call('HGET', ARGV[7] .. existing, 'story') or existing
  return {'exists', existing, known_story, '', 'url', '', ''}
end
local id = ARGV[1]
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[6])
-- Numbers go to redis.call as strings made once: Redis formats each number it is
-- given anew.
local ttl_s, expires = ARGV[3], tostring(now + ttl)
local nb, nt = tonumber(ARGV[10]), tonumber(ARGV[11])
local min_pages = tonumber(ARGV[21])
-- The page's blocks and, when read for the check below, their counts on the site.
local blocks, block_counts
if min_pages > 0 and ARGV[8] ~= '' then
  local taken, learned, differs = {}, {}, false
  for block in string.gmatch(ARGV[22], '%S+') do taken[block] = true end
  blocks, block_counts = {}, {}
  for block in string.gmatch(ARGV[8], '%S+') do blocks[#blocks + 1] = block end
  for i = 1, #blocks, 1000 do
    local last = math.min(i + 999, #blocks)
    local counts = redis.call('HMGET', KEYS[9], unpack(blocks, i, last))
    for j = i, last do
      block_counts[j] = tonumber(counts[j - i + 1] or 0)
      local is = block_counts[j] >= min_pages
      if is then learned[#learned + 1] = blocks[j] end
      if is ~= (taken[blocks[j]] == true) then differs = true end
    end
  end
  if differs then return {'learned', id, '', '', '', '', '', learned} end
end
local dup, method, similarity, evidence = false, '', '', ''
if KEYS[3] ~= KEYS[2] then
  dup = redis.call('GET', KEYS[3])
  if dup then method = 'canonical_url' end
end
if not dup then
  dup = redis.call('GET', KEYS[4])
  if dup then method = 'fingerprint' end
end
if not dup and ARGV[14] == '1' then
  local seen = {}
  for member in string.gmatch(ARGV[12], '%S+') do seen[member] = true end
  local need = tonumber(ARGV[13])
  -- Members of zsets first .. last sharing at least need of them, flat with the count;
  -- and whether the worker has not seen one of them. Only live members are read, and
  -- without their scores: Redis formats every score it sends as a string, which cost
  -- more than the rest of the reading (479 -> 174 us for 32 zsets of a busy site).
  local function candidates(first, last, need)
    local counts, order, n, flat, unseen = {}, {}, 0, {}, false
    for i = first, last do
      local live = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[6], '+inf')
      for j = 1, #live do
        local member = live[j]
        local count = counts[member]
        if count then
          counts[member] = count + 1
        else
          counts[member] = 1; n = n + 1; order[n] = member
        end
      end
    end
    counts[id] = nil
    for k = 1, n do
      local member = order[k]
      local count = counts[member]
      if count and count >= need then
        flat[#flat + 1] = member; flat[#flat + 1] = count
        unseen = unseen or not seen[member]
      end
    end
    return flat, unseen
  end
  local function read()
    local near, near_unseen = candidates(10, 9 + nb, 1)
    local story, story_unseen = candidates(10 + nb, 9 + nb + nt, need)
    return near, story, near_unseen or story_unseen
  end
  -- The members of a flat member, count list that the worker verifies: most shared
  -- first, ties by id (hex: byte order in every locale), at most ARGV 24.
  local limit = tonumber(ARGV[24])
  local function best(flat)
    local ranked = {}
    for k = 1, #flat, 2 do ranked[#ranked + 1] = {flat[k], flat[k + 1]} end
    table.sort(ranked, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
    local ids = {}
    for k = 1, math.min(limit, #ranked) do ids[k] = ranked[k][1] end
    return ids
  end
  -- The reply that hands candidates back: with the stream id they were read at (the
  -- newest entry's: the script runs alone), and the best of them with what the worker
  -- verifies them by, read here rather than in a round trip of its own.
  local function retry(near, story)
    local last = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)
    local near_ids, story_ids = best(near), best(story)
    local fetched, got = {}, {}
    for _, ids in ipairs({near_ids, story_ids}) do
      for _, cid in ipairs(ids) do
        if not got[cid] then
          got[cid] = true
          local fields = redis.call('HMGET', ARGV[7] .. cid, 'text', 'published', 'entities',
                                    'figures')
          if fields[1] then  -- not expired
            fetched[#fetched + 1] = cid
            for f = 1, 4 do fetched[#fetched + 1] = fields[f] end
          end
        end
      end
    end
    return {'retry', id, '', '', '', '', '', near, story, last[1] and last[1][1] or '0-0',
            near_ids, story_ids, fetched}
  end
  -- Whether an article committed since the stream id ``since`` is a candidate the worker
  -- has not seen (or may be: more of them than are looked at, or a stream that no longer
  -- holds them).
  local MAX_SINCE = 16
  local function new_candidate(since)
    -- The stream's approximate trimming keeps its newest maxlen entries, at least.
    if tonumber(ARGV[4]) <= MAX_SINCE then return true end
    local after = redis.call('XRANGE', KEYS[6], '(' .. since, '+', 'COUNT', MAX_SINCE + 1)
    if #after > MAX_SINCE then return true end
    local others = {}
    for _, entry in ipairs(after) do
      local fields, other = entry[2], nil
      for f = 1, #fields, 2 do
        if fields[f] == 'id' then other = fields[f + 1]; break end
      end
      if not other then return true end
      if other ~= id and not seen[other] then others[#others + 1] = other end
    end
    if #others == 0 then return false end
    local shared = {}
    for i = 10, 9 + nb + nt do
      local scores = redis.call('ZMSCORE', KEYS[i], unpack(others))
      for j = 1, #others do
        if scores[j] and tonumber(scores[j]) >= now then
          if i <= 9 + nb then return true end  -- a band: one is enough
          shared[j] = (shared[j] or 0) + 1
          if shared[j] >= need then return true end
        end
      end
    end
    return false
  end
  local near, story
  if ARGV[23] == '' or new_candidate(ARGV[23]) then
    local unseen
    near, story, unseen = read()
    if unseen then return retry(near, story) end
  end
  local proposed, how, value = ARGV[16], 'minhash', ARGV[17]
  if proposed == '' then proposed, how, value = ARGV[18], 'story', ARGV[19] end
  if proposed ~= '' then
    if redis.call('EXISTS', ARGV[7] .. proposed) == 0 then
      if not near then near, story = read() end
      return retry(near, story)  -- it expired meanwhile
    end
    dup, method, similarity, evidence = proposed, how, value, ARGV[20]
  end
end
local story, duplicate_of, kind = id, '', 'new'
if dup and dup ~= id then
  story = redis.call('HGET', ARGV[7] .. dup, 'story') or dup
  duplicate_of, kind = dup, 'duplicate'
else
  method, similarity, evidence = '', '', ''
end
local record = {}
for i = 25, #ARGV, 2 do record[ARGV[i]] = ARGV[i + 1] end
redis.call('HSET', KEYS[1], 'story', story, 'duplicate_of', duplicate_of, 'method', method,
           'similarity', similarity, 'evidence', evidence, unpack(ARGV, 25))
redis.call('EXPIRE', KEYS[1], ttl_s)
redis.call('SET', KEYS[2], id, 'EX', ttl_s)
if KEYS[3] ~= KEYS[2] then redis.call('SET', KEYS[3], id, 'NX', 'EX', ttl_s) end
redis.call('SET', KEYS[4], id, 'NX', 'EX', ttl_s)
-- Index entries carry their own expiry as score (the reading above skips the expired
-- ones), and each bucket keeps its newest members up to its cap: a full one drops the
-- lowest scores first, so the expired members go before any live one.
local over_cap = tostring(-tonumber(ARGV[15]) - 1)
local function post(i)
  redis.call('ZADD', KEYS[i], expires, id)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, over_cap)
  redis.call('EXPIRE', KEYS[i], ttl_s)
end
-- An exact copy adds nothing to either index; a same-article copy nothing to the story one.
if method ~= 'fingerprint' and method ~= 'canonical_url' then
  for i = 10, 9 + nb do post(i) end
end
if kind == 'new' or method == 'story' then
  for i = 10 + nb, 9 + nb + nt do post(i) end
end
redis.call('ZADD', KEYS[5], ARGV[2], id)
-- The recent index is ordered by published time, so it can't be trimmed by score:
-- a separate zset says when each id's hash expires; drop a bounded batch of those.
redis.call('ZADD', KEYS[8], expires, id)
local expired = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', ARGV[6], 'LIMIT', '0', '100')
if #expired > 0 then
  redis.call('ZREM', KEYS[5], unpack(expired))
  redis.call('ZREM', KEYS[8], unpack(expired))
end
local event = {
  'type', kind, 'id', id, 'url', record['url'] or '',
  'canonical_url', record['canonical_url'] or '', 'title', record['title'] or '',
  'feed', record['feed'] or '', 'published', record['published'] or '',
  'story', story, 'duplicate_of', duplicate_of, 'method', method,
  'similarity', similarity, 'evidence', evidence,
  'fingerprint', record['fingerprint'] or '',
}
local stream_id = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', unpack(event))
redis.call('HINCRBY', KEYS[7], 'articles_' .. kind, '1')
-- Learn the site's boilerplate from pages with a text of their own: a retry or an exact
-- copy must not count (an edited copy or a rewrite is another page, and counts).
if method ~= 'fingerprint' and method ~= 'canonical_url' and ARGV[8] ~= '' then
  local site = KEYS[9]
  redis.call('HINCRBY', site, 'pages', '1')
  if block_counts then  -- one HSET of the counts read above, each one more
    for i = 1, #blocks, 500 do
      local counts = {}
      for j = i, math.min(i + 499, #blocks) do
        counts[#counts + 1] = blocks[j]; counts[#counts + 1] = block_counts[j] + 1
      end
      redis.call('HSET', site, unpack(counts))
    end
  else
    for block in string.gmatch(ARGV[8], '%S+') do redis.call('HINCRBY', site, block, '1') end
  end
  redis.call('EXPIRE', site, ttl_s)
  local cap = tonumber(ARGV[9])
  if redis.call('HLEN', site) > cap then
    -- Bounded: forget the blocks seen once (single pages' own paragraphs); if that is
    -- not enough, halve every count, so old blocks fade and recent ones stay.
    local all = redis.call('HGETALL', site)
    local ones = {}
    for i = 1, #all, 2 do
      if all[i] ~= 'pages' and all[i + 1] == '1' then ones[#ones + 1] = all[i] end
    end
    for i = 1, #ones, 1000 do
      redis.call('HDEL', site, unpack(ones, i, math.min(i + 999, #ones)))
    end
    if redis.call('HLEN', site) > cap * 3 / 4 then
      all = redis.call('HGETALL', site)
      for i = 1, #all, 2 do
        local half = math.floor(tonumber(all[i + 1]) / 2)
        if half > 0 then redis.call('HSET', site, all[i], half)
        else redis.call('HDEL', site, all[i]) end
      end
    end
  end
end
if kind == 'new' then
  redis.call('PUBLISH', ARGV[5], cjson.encode({
    id = id, url = record['url'] or '', canonical_url = record['canonical_url'] or '',
    title = record['title'] or '', feed = record['feed'] or '',
    published = record['published'] or '', story = story, stream_id = stream_id,
  }))
end
return {kind, id, story, duplicate_of, method, stream_id, similarity}
"""

#: Claim due feeds for one poll each, in one round trip (the scheduler's tick).
#:
#: KEYS: 1 feeds due zset. ARGV: 1 now epoch, 2 lease-until epoch, 3.. feed names.
#: Returns the names claimed: those due at ``now`` (or not in the set at all);
#: each one's score becomes the lease, so no other scheduler takes it meanwhile.
CLAIM_DUE_FEEDS = r"""
local now, lease = tonumber(ARGV[1]), ARGV[2]
local claimed = {}
for i = 3, #ARGV do
  local due = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not due or tonumber(due) <= now then
    redis.call('ZADD', KEYS[1], lease, ARGV[i])
    claimed[#claimed + 1] = ARGV[i]
  end
end
return claimed
"""

#: Remember a tick's enqueued entries by canonical URL and guid, in one call: redis-py
#: spends more on packing and parsing a SET than Redis does on running it.
#:
#: KEYS: the seen-URL and seen-guid keys of each entry, in pairs.
#: ARGV: 1 ttl seconds, then the job id of each pair.
MARK_SEEN = r"""
local ttl = ARGV[1]
for i = 1, #KEYS, 2 do
  local job = ARGV[(i + 1) / 2 + 1]
  redis.call('SET', KEYS[i], job, 'EX', ttl)
  redis.call('SET', KEYS[i + 1], job, 'EX', ttl)
end
return #KEYS / 2
"""

#: The state hashes of many feeds, in one call (a tick's claimed feeds): redis-py's
#: work for a pipelined HGETALL each cost more than the polls answered 304 did.
#:
#: KEYS: the feeds' state hashes. Returns each one's fields and values, flat.
FEED_STATES = r"""
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""

#: Record the polls of a tick: each feed's changed state fields, and its next check in
#: the due set (which ends its lease); one call, atomic for each feed and all of them.
#:
#: KEYS: 1 the feeds-due zset, then each feed's state hash.
#: ARGV: for each feed in turn: its name, its next check (epoch), n, and n field, value
#:       pairs.
SAVE_FEED_STATES = r"""
local at = 1
for i = 2, #KEYS do
  local n = tonumber(ARGV[at + 2])
  if n > 0 then redis.call('HSET', KEYS[i], unpack(ARGV, at + 3, at + 2 + 2 * n)) end
  redis.call('ZADD', KEYS[1], ARGV[at + 1], ARGV[at])
  at = at + 3 + 2 * n
end
return #KEYS - 1
"""
