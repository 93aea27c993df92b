import { DmError } from '../errors.js'
import { compareVersions } from '../format/version.js'
import { ITEM_HASH_BYTES, MAX_ITEMS_PER_LIST, NO_CLAIM, RangeMode, ageClass, type Bound, type IndexEntry, type ReconcileRange } from '../protocol/messages.js'
import type { ReconcileIndex } from './fingerprint.js'

/*
 * The leaves of reconciliation (docs/PROTOCOL.md 7.4.4): once one side lists
 * per-entry hashes for a range, at most four more answers settle it, and only
 * differing entries travel in full, each once where the pairing below holds:
 *
 *   Hashes       → Reply: our entries matching none of their hashes, and a
 *                  bitmap of their hashes we lack. An entry of ours that sits
 *                  where they hold a different entry (between the same two
 *                  matched neighbours) and is no newer than their newest may
 *                  be an older version of theirs: we hold it back
 *                  (PartialReply) and pair it with that hash of theirs,
 *                  claiming its age class (how much older than their newest).
 *   Reply        → Items: ours they asked for, unless they listed it newer.
 *   PartialReply → Items, even empty, holding back ours that a claim shows
 *                  older than theirs (then PartialItems).
 *   Items        → the entries we held back that theirs did not supersede
 *                  (Items), or Skip; Items even empty after PartialItems.
 *
 * A claim is only a hint: a wrong pairing or a lying peer costs at most one
 * more answer, since what one side held back it sends once the other's
 * Items show it was not superseded.
 */

/** The entries the peer offers that we lack or hold older: what we fetch once the exchange is done. */
export interface Ledger {
  /** Records their entries (wants the newer ones) and returns them by name. Throws ERR_DECODE past maxLearned. */
  learn: (entries: IndexEntry[]) => Map<string, IndexEntry>
  /** The wants, in key order. */
  wants: () => IndexEntry[]
}

export function createLedger (index: ReconcileIndex, maxLearned: number): Ledger {
  const learned = new Map<string, { entry: IndexEntry, key: Uint8Array }>()
  return {
    learn (entries) {
      const theirs = new Map<string, IndexEntry>()
      for (const e of entries) {
        theirs.set(e.name, e)
        const key = Buffer.from(e.name, 'utf8')
        const i = index.find(key)
        if (i >= 0 && compareVersions(e, index.entry(i)) <= 0) continue
        const known = learned.get(e.name)
        if (known !== undefined && compareVersions(known.entry, e) >= 0) continue
        learned.set(e.name, { entry: e, key })
        if (learned.size > maxLearned) throw new DmError('ERR_DECODE', `peer offered more than ${maxLearned} entries in one exchange`)
      }
      return theirs
    },
    wants: () => [...learned.values()].sort((a, b) => Buffer.compare(a.key, b.key)).map(w => w.entry)
  }
}

export interface LeafAnswer {
  range: ReconcileRange
  /** Our entries the answer held back: they go in our answer to their Items, unless theirs are newer. */
  withheld: IndexEntry[]
}

const hashAt = (hashes: Uint8Array, j: number): number => Buffer.from(hashes.buffer, hashes.byteOffset + j * ITEM_HASH_BYTES, ITEM_HASH_BYTES).readUIntBE(0, ITEM_HASH_BYTES)

/**
 * Our answer to their Hashes for positions [from, to): a Reply or PartialReply,
 * or undefined when it would list more than MAX_ITEMS_PER_LIST entries (the
 * caller splits the range instead).
 */
export function answerHashes (index: ReconcileIndex, salt: Uint8Array, upper: Bound, from: number, to: number, hashes: Uint8Array, newestMs: number): LeafAnswer | undefined {
  const n = hashes.length / ITEM_HASH_BYTES
  if (to - from - n > MAX_ITEMS_PER_LIST) return undefined
  // Each of ours takes the first unclaimed hash of theirs with its value: matches then follow key order.
  const positions = new Map<number, number[]>()
  for (let j = 0; j < n; j++) {
    const h = hashAt(hashes, j)
    const list = positions.get(h)
    if (list === undefined) positions.set(h, [j])
    else list.push(j)
  }
  const match = new Int32Array(to - from).fill(-1)
  const theirsMatched = new Uint8Array(n)
  for (let i = from; i < to; i++) {
    const j = n === 0 ? undefined : positions.get(hashAt(index.itemHash(salt, i), 0))?.shift()
    if (j !== undefined) { match[i - from] = j; theirsMatched[j] = 1 }
  }
  // unmatchedBefore[j]: how many of their hashes before position j matched none of ours.
  const unmatchedBefore = new Uint32Array(n + 1)
  for (let j = 0; j < n; j++) unmatchedBefore[j + 1] = unmatchedBefore[j] + 1 - theirsMatched[j]
  const nextMatch = new Int32Array(to - from + 1).fill(n)
  for (let k = to - from - 1; k >= 0; k--) nextMatch[k] = match[k] >= 0 ? match[k] : nextMatch[k + 1]
  const entries: IndexEntry[] = []
  const withheld: IndexEntry[] = []
  // claimOf[j]: the age class claimed for their unmatched hash j, paired in order with ours held back between the same matches.
  const claimOf = new Uint8Array(n).fill(NO_CLAIM)
  let previousMatch = -1
  for (let k = 0; k < to - from; k++) {
    if (match[k] >= 0) { previousMatch = match[k]; continue }
    const mine = index.entry(from + k)
    const theirsBetween = previousMatch < nextMatch[k] && unmatchedBefore[nextMatch[k]] > unmatchedBefore[previousMatch + 1]
    if (!theirsBetween || mine.timestampMs > newestMs) { entries.push(mine); continue }
    withheld.push(mine)
    for (let j = previousMatch + 1; j < nextMatch[k]; j++) {
      if (theirsMatched[j] === 0 && claimOf[j] === NO_CLAIM) { claimOf[j] = ageClass(newestMs - mine.timestampMs); break }
    }
  }
  if (entries.length + withheld.length > MAX_ITEMS_PER_LIST) return undefined
  const request = new Uint8Array(Math.ceil(n / 8))
  const claims: number[] = []
  for (let j = 0; j < n; j++) {
    if (theirsMatched[j] !== 0) continue
    request[j >> 3] |= 0x80 >> (j & 7)
    claims.push(claimOf[j])
  }
  const range: ReconcileRange = withheld.length > 0
    ? { upper, mode: RangeMode.PartialReply, entries, request, claims: Uint8Array.from(claims) }
    : { upper, mode: RangeMode.Reply, entries, request }
  return { range, withheld }
}

/**
 * Their Reply to our hashes for positions [from, to), whose newest timestamp was `newestMs`: what they
 * asked for, unless they listed it newer or (PartialReply) claimed a held-back entry younger than ours.
 */
export function answerReply (index: ReconcileIndex, ledger: Ledger, from: number, to: number, newestMs: number, reply: Extract<ReconcileRange, { mode: RangeMode.Reply | RangeMode.PartialReply }>): LeafAnswer {
  const { upper, request } = reply
  const n = to - from
  if (request.length !== Math.ceil(n / 8)) throw new DmError('ERR_DECODE', `reply bitmap of ${request.length} bytes for ${n} hashes`)
  if (n % 8 !== 0 && (request[request.length - 1] & (0xff >> (n % 8))) !== 0) throw new DmError('ERR_DECODE', 'reply bitmap has bits past its hashes')
  const theirs = ledger.learn(reply.entries)
  const items: IndexEntry[] = []
  const withheld: IndexEntry[] = []
  for (let j = 0, asked = 0; j < n; j++) {
    if ((request[j >> 3] & (0x80 >> (j & 7))) === 0) continue
    const claim = reply.mode === RangeMode.PartialReply ? reply.claims[asked++] : NO_CLAIM
    const mine = index.entry(from + j)
    const their = theirs.get(mine.name)
    if (their !== undefined && compareVersions(mine, their) <= 0) continue
    // A smaller class is a strictly smaller age: their held-back entry is newer than ours, if it is of our name.
    if (claim < ageClass(newestMs - mine.timestampMs)) withheld.push(mine)
    else items.push(mine)
  }
  if (reply.mode === RangeMode.Reply) return { range: items.length > 0 ? { upper, mode: RangeMode.Items, entries: items } : { upper, mode: RangeMode.Skip }, withheld }
  return { range: { upper, mode: withheld.length > 0 ? RangeMode.PartialItems : RangeMode.Items, entries: items }, withheld }
}

/** Their Items for a range where we held back `withheld`: those of them still newer (Items), or Skip unless `answerDue`. */
export function answerItems (ledger: Ledger, upper: Bound, entries: IndexEntry[], withheld: IndexEntry[], answerDue: boolean): ReconcileRange {
  const theirs = ledger.learn(entries)
  const newer = withheld.filter(mine => {
    const their = theirs.get(mine.name)
    return their === undefined || compareVersions(mine, their) > 0
  })
  return newer.length > 0 || answerDue ? { upper, mode: RangeMode.Items, entries: newer } : { upper, mode: RangeMode.Skip }
}
