import { randomBytes } from 'node:crypto'
import { DmError } from '../errors.js'
import { compareVersions } from '../format/version.js'
import {
  FINGERPRINT_BYTES, ITEM_HASH_BYTES, MAX_ITEMS_PER_LIST, MAX_RANGES_PER_MESSAGE, MAX_RECONCILE_BYTES,
  MessageType, RangeMode, SALT_BYTES, decodeMessage, encodeMessage, expectType,
  type Bound, type IndexEntry, type ReconcileRange
} from '../protocol/messages.js'
import type { ReconcileIndex } from './fingerprint.js'
import type { Channel } from './transport.js'

/*
 * Range-based set reconciliation (docs/PROTOCOL.md 7.4), after the designs of
 * negentropy and of Meyer's "Range-Based Set Reconciliation": pure, with no
 * transport and no clock. Two reconcilers, one per side, exchange Reconcile
 * frames until one of them says it is done; each side then knows which of the
 * peer's entries it lacks or holds older (`wants`), and fetches them.
 *
 * Per range, what arrives decides what goes back:
 *   Digest/Fingerprint equal to ours   → Skip
 *   …different, we hold ≤ LEAF_ENTRIES → Hashes (one short hash per entry)
 *   …different, we hold more           → SPLIT_BUCKETS Fingerprints
 *   Hashes                             → Reply: our entries matching none, and
 *                                        a bitmap of their hashes we lack
 *   Reply                              → learn their entries; Items: ours they
 *                                        asked for, unless theirs is newer
 *   Items                              → learn their entries; Skip
 * Only differing entries ever travel in full; a round in sync is one Digest
 * each way.
 */

/** A range where we hold at most this many entries is answered with per-entry hashes rather than split. */
export const LEAF_ENTRIES = 64
/** A differing range where we hold more is split into this many fingerprinted buckets. */
export const SPLIT_BUCKETS = 16

export interface ReconcileLimits {
  /** Messages one side accepts in one exchange; a peer that keeps going longer is cut off. @default 64 */
  maxRounds: number
  /** Distinct entries one exchange may teach us (the wants); more is a protocol error. @default 262144 */
  maxLearned: number
  /** Soft size of the messages we send: past it, the rest of the key space is deferred to a later round. @default 512 KiB */
  messageBytes: number
}

export const DEFAULT_RECONCILE_LIMITS: Readonly<ReconcileLimits> = {
  // Honest exchanges take about 2 × log16(size / 64) + 4 messages, plus one per ~512 KiB of entries moved.
  maxRounds: 64,
  maxLearned: 262_144,
  messageBytes: 512 * 1024
}

export interface ReconcilerInit {
  /** Our advertised index, frozen for the exchange. */
  index: ReconcileIndex
  /** The initiator speaks first and chooses the salt. */
  role: 'initiator' | 'responder'
  /** The exchange's salt (initiator only); random by default. Tests fix it. */
  salt?: Uint8Array
  limits?: Partial<ReconcileLimits>
}

export interface ReconcileStep {
  /** The frame to send back, if any. */
  reply: Uint8Array | undefined
  /** True when the exchange is over: after sending `reply` (if any), neither side sends another Reconcile frame. */
  done: boolean
}

export interface Reconciler {
  /** The initiator's first frame. */
  initiate: () => Uint8Array
  /** Handles one frame from the peer. Throws DmError('ERR_DECODE') on a malformed frame or a broken rule. */
  receive: (frame: Uint8Array) => ReconcileStep
  /** Entries the peer holds that we lack or hold older, in name order: fetch them from it once done. */
  wants: () => IndexEntry[]
  /** Frames received so far. */
  readonly rounds: number
}

type Out = ReconcileRange

/** Key of a range for the bookkeeping of what we asked. */
const rangeKey = (lower: Uint8Array, upper: Bound): string => `${Buffer.from(lower).toString('hex')}:${upper === null ? '' : Buffer.from(upper).toString('hex')}`

const EMPTY = new Uint8Array(0)

/** The shortest key k with prev < k ≤ next: a bound that separates two adjacent entries. */
function separator (prev: Uint8Array, next: Uint8Array): Uint8Array {
  let i = 0
  while (i < prev.length && prev[i] === next[i]) i++
  return next.slice(0, i + 1)
}

export function createReconciler (init: ReconcilerInit): Reconciler {
  const { index } = init
  const limits: ReconcileLimits = { ...DEFAULT_RECONCILE_LIMITS, ...init.limits }
  let salt: Uint8Array | undefined = init.role === 'initiator' ? (init.salt ?? randomBytes(SALT_BYTES)) : undefined
  if (salt !== undefined && salt.length !== SALT_BYTES) throw new RangeError(`salt must be ${SALT_BYTES} bytes`)
  let rounds = 0
  let finished = false
  /** The wants so far, by name, with the name's bytes for sorting. */
  const learned = new Map<string, { entry: IndexEntry, key: Uint8Array }>()
  /** Ranges our last message sent Hashes for (a Reply must match one) and Reply for (Items must match one). */
  let sentHashes = new Set<string>()
  let sentReplies = new Set<string>()

  function learn (entries: IndexEntry[]): Map<string, IndexEntry> {
    const theirs = new Map<string, IndexEntry>()
    for (const e of entries) {
      theirs.set(e.name, e)
      const key = Buffer.from(e.name, 'utf8')
      const i = index.find(key)
      if (i >= 0 && compareVersions(e, index.entry(i)) <= 0) continue
      const known = learned.get(e.name)
      if (known !== undefined && compareVersions(known.entry, e) >= 0) continue
      learned.set(e.name, { entry: e, key })
      if (learned.size > limits.maxLearned) throw new DmError('ERR_DECODE', `peer offered more than ${limits.maxLearned} entries in one exchange`)
    }
    return theirs
  }

  function hashesOf (from: number, to: number): Uint8Array {
    const out = new Uint8Array((to - from) * ITEM_HASH_BYTES)
    for (let i = from; i < to; i++) out.set(index.itemHash(salt as Uint8Array, i), (i - from) * ITEM_HASH_BYTES)
    return out
  }

  /** A range that differs: our hashes if we hold few entries in it, else fingerprints of SPLIT_BUCKETS buckets. */
  function differs (out: Out[], upper: Bound, from: number, to: number): void {
    const n = to - from
    if (n <= LEAF_ENTRIES) {
      out.push({ upper, mode: RangeMode.Hashes, hashes: hashesOf(from, to) })
      return
    }
    let start = from
    for (let k = 1; k < SPLIT_BUCKETS; k++) {
      const end = from + Math.floor(k * n / SPLIT_BUCKETS)
      out.push({ upper: separator(index.key(end - 1), index.key(end)), mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt as Uint8Array, start, end) })
      start = end
    }
    out.push({ upper, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt as Uint8Array, start, to) })
  }

  /** Their hashes for a range: answer with our unmatched entries and a bitmap of theirs we lack, or split if we hold too many. */
  function answerHashes (out: Out[], upper: Bound, from: number, to: number, hashes: Uint8Array): boolean {
    const theirCount = hashes.length / ITEM_HASH_BYTES
    if (to - from - theirCount > MAX_ITEMS_PER_LIST) { differs(out, upper, from, to); return false }
    const pending = new Map<number, number[]>()
    for (let j = 0; j < theirCount; j++) {
      const h = Buffer.from(hashes.buffer, hashes.byteOffset + j * ITEM_HASH_BYTES, ITEM_HASH_BYTES).readUIntBE(0, ITEM_HASH_BYTES)
      const list = pending.get(h)
      if (list === undefined) pending.set(h, [j])
      else list.push(j)
    }
    const unmatched: IndexEntry[] = []
    for (let i = from; i < to; i++) {
      if (theirCount === 0) { unmatched.push(index.entry(i)); continue }
      const h = Buffer.from(index.itemHash(salt as Uint8Array, i)).readUIntBE(0, ITEM_HASH_BYTES)
      const list = pending.get(h)
      if (list !== undefined && list.length > 0) list.pop()
      else unmatched.push(index.entry(i))
    }
    if (unmatched.length > MAX_ITEMS_PER_LIST) { differs(out, upper, from, to); return false }
    const request = new Uint8Array(Math.ceil(theirCount / 8))
    for (const list of pending.values()) for (const j of list) request[j >> 3] |= 0x80 >> (j & 7)
    out.push({ upper, mode: RangeMode.Reply, entries: unmatched, request })
    return true
  }

  /** Their Reply to our hashes: what they asked for, unless what they hold is newer. */
  function answerReply (out: Out[], upper: Bound, from: number, to: number, entries: IndexEntry[], request: Uint8Array): void {
    const n = to - from
    if (request.length !== Math.ceil(n / 8)) throw new DmError('ERR_DECODE', `reply bitmap of ${request.length} bytes for ${n} hashes`)
    if (n % 8 !== 0 && (request[request.length - 1] & (0xff >> (n % 8))) !== 0) throw new DmError('ERR_DECODE', 'reply bitmap has bits past its hashes')
    const theirs = learn(entries)
    const items: IndexEntry[] = []
    for (let j = 0; j < n; j++) {
      if ((request[j >> 3] & (0x80 >> (j & 7))) === 0) continue
      const mine = index.entry(from + j)
      const their = theirs.get(mine.name)
      if (their === undefined || compareVersions(mine, their) > 0) items.push(mine)
    }
    out.push(items.length > 0 ? { upper, mode: RangeMode.Items, entries: items } : { upper, mode: RangeMode.Skip })
  }

  /** Rough encoded size of a range, for the soft message budget. */
  function sizeOf (r: Out): number {
    const bound = 2 + (r.upper?.length ?? 0) + 1
    switch (r.mode) {
      case RangeMode.Skip: return bound
      case RangeMode.Digest: return bound + 32
      case RangeMode.Fingerprint: return bound + FINGERPRINT_BYTES
      case RangeMode.Hashes: return bound + 2 + r.hashes.length
      case RangeMode.Reply: case RangeMode.Items: return bound + 3 + 33 + r.entries.reduce((s, e) => s + 2 + Buffer.byteLength(e.name) + 40, 0)
    }
  }

  /** Merges adjacent Skips, so a message in sync elsewhere stays short. */
  function compact (out: Out[]): Out[] {
    const merged: Out[] = []
    for (const r of out) {
      const last = merged[merged.length - 1]
      if (r.mode === RangeMode.Skip && last?.mode === RangeMode.Skip) merged[merged.length - 1] = r
      else merged.push(r)
    }
    return merged
  }

  function encode (ranges: Out[], withSalt: boolean): Uint8Array {
    const frame = encodeMessage({ type: MessageType.Reconcile, salt: withSalt ? salt : undefined, ranges })
    if (frame.length > MAX_RECONCILE_BYTES) throw new Error(`internal: reconcile frame of ${frame.length} bytes`)
    return frame
  }

  return {
    get rounds () { return rounds },
    initiate () {
      if (init.role !== 'initiator' || rounds > 0) throw new Error('initiate() is for the initiator, once')
      return encode([{ upper: null, mode: RangeMode.Digest, digest: index.digest(0, index.size) }], true)
    },
    receive (frame) {
      if (finished) throw new DmError('ERR_DECODE', 'peer sent a reconcile frame after the exchange ended')
      const m = expectType(decodeMessage(frame), MessageType.Reconcile)
      rounds++
      if (rounds > limits.maxRounds) throw new DmError('ERR_DECODE', `reconciliation still going after ${limits.maxRounds} messages`)
      if (init.role === 'responder' && rounds === 1) {
        if (m.salt === undefined) throw new DmError('ERR_DECODE', 'the first reconcile message carries no salt')
        salt = m.salt
      } else if (m.salt !== undefined) {
        throw new DmError('ERR_DECODE', 'only the first reconcile message carries a salt')
      }
      if (m.ranges.every(r => r.mode === RangeMode.Skip)) {
        finished = true
        return { reply: undefined, done: true }
      }
      const out: Out[] = []
      const hashes = new Set<string>()
      const replies = new Set<string>()
      let bytes = 0
      let lower: Uint8Array = EMPTY
      let deferred = false
      let collapseFrom: number | undefined
      for (const r of m.ranges) {
        const from = index.lowerBound(lower)
        const to = index.lowerBound(r.upper)
        const key = rangeKey(lower, r.upper)
        const mark = out.length
        if (r.mode === RangeMode.Reply && !sentHashes.has(key)) throw new DmError('ERR_DECODE', 'peer replied to hashes we did not send')
        if (r.mode === RangeMode.Items && !sentReplies.has(key)) throw new DmError('ERR_DECODE', 'peer sent items we did not ask for')
        if (deferred) {
          // Over budget: still learn what they sent, and answer each remaining range with our
          // fingerprint of it, so the peer resumes there next round without splitting again.
          if (r.mode === RangeMode.Reply || r.mode === RangeMode.Items) learn(r.entries)
          if (collapseFrom !== undefined) { /* inside the collapsed rest */ } else if (out.length >= MAX_RANGES_PER_MESSAGE - 1 && r.upper !== null) collapseFrom = from
          else if (r.mode === RangeMode.Skip) out.push({ upper: r.upper, mode: RangeMode.Skip })
          else out.push({ upper: r.upper, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt as Uint8Array, from, to) })
        } else {
          switch (r.mode) {
            case RangeMode.Skip:
              out.push({ upper: r.upper, mode: RangeMode.Skip })
              break
            case RangeMode.Digest:
              if (Buffer.from(index.digest(from, to)).equals(r.digest)) out.push({ upper: r.upper, mode: RangeMode.Skip })
              else differs(out, r.upper, from, to)
              break
            case RangeMode.Fingerprint:
              if (Buffer.from(index.fingerprint(salt as Uint8Array, from, to)).equals(r.fingerprint)) out.push({ upper: r.upper, mode: RangeMode.Skip })
              else differs(out, r.upper, from, to)
              break
            case RangeMode.Hashes:
              if (answerHashes(out, r.upper, from, to, r.hashes)) replies.add(key)
              break
            case RangeMode.Reply:
              answerReply(out, r.upper, from, to, r.entries, r.request)
              break
            case RangeMode.Items:
              learn(r.entries)
              out.push({ upper: r.upper, mode: RangeMode.Skip })
              break
          }
          if (out.length > mark && out[mark].mode === RangeMode.Hashes) hashes.add(key)
          for (let i = mark; i < out.length; i++) bytes += sizeOf(out[i])
          if (bytes > limits.messageBytes || out.length > MAX_RANGES_PER_MESSAGE - SPLIT_BUCKETS - 1) deferred = true
        }
        if (r.upper !== null) lower = r.upper
      }
      if (collapseFrom !== undefined) {
        // Out of ranges too: the rest of the key space as one fingerprint, which the peer splits again.
        out.push({ upper: null, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt as Uint8Array, collapseFrom, index.size) })
      }
      sentHashes = hashes
      sentReplies = replies
      const ranges = compact(out)
      const done = ranges.length === 1 && ranges[0].mode === RangeMode.Skip
      finished = done
      return { reply: encode(ranges, false), done }
    },
    wants: () => [...learned.values()].sort((a, b) => Buffer.compare(a.key, b.key)).map(w => w.entry)
  }
}

/**
 * Runs one exchange over a channel, for either role (the initiator speaks
 * first), and returns the wants. Does not close the channel: the caller
 * closes it, then fetches the wants from the same peer.
 */
export async function reconcileOver (ch: Channel, reconciler: Reconciler, role: ReconcilerInit['role']): Promise<IndexEntry[]> {
  if (role === 'initiator') await ch.send(reconciler.initiate())
  for (;;) {
    const frame = await ch.read()
    if (frame === undefined) throw new DmError('ERR_DECODE', 'stream ended in the middle of reconciliation')
    const step = reconciler.receive(frame)
    if (step.reply !== undefined) await ch.send(step.reply)
    if (step.done) return reconciler.wants()
  }
}
