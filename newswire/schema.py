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
#: The worker looks up candidates first (near-duplicate buckets, story postings) and
#: proposes a match; this script re-checks everything that could have changed since:
#: exact keys are decided here, and a bucket or posting member that the worker did not
#: see (another worker committed meanwhile) makes it answer ``retry`` without writing,
#: so the worker looks again. Two copies committed at once are thus announced once.
#:
#: KEYS: 1 article hash, 2 url index of the entry link, 3 url index of the page's
#:       own canonical URL (may equal 2), 4 fingerprint index, 5 recent zset, 6 stream,
#:       7 stats hash, 8 expiry zset, 9 the site's learned-blocks hash,
#:       10 .. 9+nb near-duplicate band zsets, then nt story-term zsets
#: ARGV: 1 article id, 2 published epoch, 3 ttl seconds, 4 stream maxlen, 5 channel,
#:       6 now epoch, 7 article key prefix ("news:article:"), 8 the page's block ids
#:       (space-separated, may be empty), 9 most blocks kept per site,
#:       10 nb, 11 nt, 12 ids the worker's lookup returned (LOOKUP_CANDIDATES; space-separated),
#:       13 shared terms that make a posting a story candidate, 14 "1" to re-check
#:       (``0`` only for bulk loads whose decisions are known), 15 most members kept per
#:       band/term zset, 16 proposed near-duplicate id, 17 its similarity,
#:       18 proposed same-story article id, 19 its score, 20 the evidence of the match,
#:       21.. field, value pairs of the article
#: Returns {type, id, story, duplicate_of, method, stream_id, similarity}; type
#: "exists" when the entry's URL was stored before (a retried job): then nothing at all
#: is written; "retry" when the worker's lookup is stale: nothing is written either.
COMMIT_ARTICLE = r"""
local existing = redis.call('GET', KEYS[2])
if existing then
  local known_story = redis.call('HGET', ARGV[7] .. existing, 'story') or existing
  return {'exists', existing, known_story, '', 'url', '', ''}
end
local id = ARGV[1]
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[6])
local nb, nt = tonumber(ARGV[10]), tonumber(ARGV[11])
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
  -- Anything indexed since the worker looked may be a better match: look again.
  local seen = {}
  for member in string.gmatch(ARGV[12], '%S+') do seen[member] = true end
  for i = 10, 9 + nb do
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now, '+inf')) do
      if not seen[member] and member ~= id then return {'retry', id, '', '', '', '', ''} end
    end
  end
  local shared, need = {}, tonumber(ARGV[13])
  for i = 10 + nb, 9 + nb + nt do
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now, '+inf')) do
      if not seen[member] and member ~= id then
        shared[member] = (shared[member] or 0) + 1
        if shared[member] >= need then return {'retry', id, '', '', '', '', ''} end
      end
    end
  end
  local proposed, how, value = ARGV[16], 'minhash', ARGV[17]
  if proposed == '' then proposed, how, value = ARGV[18], 'story', ARGV[19] end
  if proposed ~= '' then
    if redis.call('EXISTS', ARGV[7] .. proposed) == 0 then
      return {'retry', id, '', '', '', '', ''}  -- it expired meanwhile
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
local fields = {}
for i = 21, #ARGV do fields[#fields + 1] = ARGV[i] end
local record = {}
for i = 1, #fields, 2 do record[fields[i]] = fields[i + 1] end
redis.call('HSET', KEYS[1], 'story', story, 'duplicate_of', duplicate_of, 'method', method,
           'similarity', similarity, 'evidence', evidence, unpack(fields))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SET', KEYS[2], id, 'EX', ttl)
if KEYS[3] ~= KEYS[2] then redis.call('SET', KEYS[3], id, 'NX', 'EX', ttl) end
redis.call('SET', KEYS[4], id, 'NX', 'EX', ttl)
-- Index entries carry their own expiry as score, so a bucket that lives on (touched
-- by newer articles) drops the members whose article is gone; each is capped.
local cap = tonumber(ARGV[15])
local function post(key)
  redis.call('ZADD', key, now + ttl, id)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) > cap then redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1) end
  redis.call('EXPIRE', key, ttl)
end
-- An exact copy adds nothing to either index; a same-article copy nothing to the story one.
if method ~= 'fingerprint' and method ~= 'canonical_url' then
  for i = 10, 9 + nb do post(KEYS[i]) end
end
if kind == 'new' or method == 'story' then
  for i = 10 + nb, 9 + nb + nt do post(KEYS[i]) end
end
redis.call('ZADD', KEYS[5], ARGV[2], id)
-- The recent index is ordered by published time, so it can't be trimmed by score:
-- a separate zset says when each id's hash expires; drop a bounded batch of those.
redis.call('ZADD', KEYS[8], now + ttl, id)
local expired = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', ARGV[6], 'LIMIT', 0, 100)
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
redis.call('HINCRBY', KEYS[7], 'articles_' .. kind, 1)
-- Learn the site's boilerplate from pages with a text of their own: a retry or an exact
-- copy must not count (an edited copy or a rewrite is another page, and counts).
if method ~= 'fingerprint' and method ~= 'canonical_url' and ARGV[8] ~= '' then
  local site = KEYS[9]
  redis.call('HINCRBY', site, 'pages', 1)
  for block in string.gmatch(ARGV[8], '%S+') do redis.call('HINCRBY', site, block, 1) end
  redis.call('EXPIRE', site, ttl)
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

#: The read before a commit: the members of an article's near-duplicate buckets and
#: story postings that could match it, counted in Redis so that only those few ids travel
#: (a posting of a common name holds up to the cap; the article shares 1 or 2 terms with
#: most of its members). Read-only; the commit script re-checks the same counts.
#:
#: KEYS: nb band zsets, then nt term zsets. ARGV: 1 nb, 2 now epoch, 3 shared terms that
#: make a posting member a story candidate, 4 the article's own id.
#: Returns {band members and bands shared, flat; term members and terms shared, flat},
#: only term members sharing at least ARGV[3] terms.
LOOKUP_CANDIDATES = r"""
local nb, now, need, self = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local function count(first, last)
  local counts, order = {}, {}
  for i = first, last do
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now, '+inf')) do
      if member ~= self then
        if not counts[member] then order[#order + 1] = member; counts[member] = 0 end
        counts[member] = counts[member] + 1
      end
    end
  end
  return counts, order
end
local bands, band_order = count(1, nb)
local terms, term_order = count(nb + 1, #KEYS)
local near, story = {}, {}
for _, member in ipairs(band_order) do
  near[#near + 1] = member; near[#near + 1] = bands[member]
end
for _, member in ipairs(term_order) do
  if terms[member] >= need then story[#story + 1] = member; story[#story + 1] = terms[member] end
end
return {near, story}
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
