import { isAscii } from 'node:buffer'
import { DmError } from '../errors.js'
import { Reader, Writer } from '../format/binary.js'
import { MAX_RECONCILE_BYTES, MessageType, type IndexEntry } from './messages.js'
import {
  REF_SHIFT, REF_VARINT, peerBoundsOf, readClaims, readCount, readKey, timestamps, writeKey,
  type Bound, type Timestamps
} from './reconcile-fields.js'

export { MAX_AGE_CLASS, NO_CLAIM, ageClass, type Bound } from './reconcile-fields.js'

/*
 * Reconcile: range-based set reconciliation, the second format of push-pull
 * (docs/PROTOCOL.md section 7.4; the state machine is src/sync/reconcile.ts).
 * A message is a list of ranges that together cover the whole key space
 * (keys are names, compared bytewise), each with a mode saying what the
 * sender knows or asks about its entries in that range.
 *
 * messages.ts frames it (type byte 8) and re-exports everything here; this
 * module uses its imports from messages.ts only inside functions, so the
 * two may load in either order.
 */

/** 3: claims and PartialItems, bounds by reference, timestamps as ages, varint counts (docs/PROTOCOL.md 7.4, "Message versions"). */
export const RECONCILE_VERSION = 3
/** Random bytes the initiator mixes into every fingerprint and item hash of one exchange. */
export const SALT_BYTES = 16
/** The unsalted whole-range digest: a full SHA-256, so it can be cached between exchanges. */
export const DIGEST_BYTES = 32
/** A salted range fingerprint. */
export const FINGERPRINT_BYTES = 16
/** A salted per-entry hash, listed for small ranges. */
export const ITEM_HASH_BYTES = 3
export const MAX_RANGES_PER_MESSAGE = 8192
export const MAX_HASHES_PER_RANGE = 256
export const MAX_ITEMS_PER_LIST = 1024
const MAX_REQUEST_BYTES = MAX_HASHES_PER_RANGE / 8

/** What a range carries. Append-only, like MessageType. */
export enum RangeMode {
  /** Nothing more to say about this range. */
  Skip = 0,
  /** The unsalted SHA-256 digest of the sender's entries in the range. */
  Digest = 1,
  /** The salted, truncated fingerprint of the sender's entries in the range. */
  Fingerprint = 2,
  /** One salted hash per sender's entry in the range, in key order, and the newest timestamp among those entries. */
  Hashes = 3,
  /** Answer to Hashes: the sender's entries that matched none of them, and a bitmap of the hashes it did not match. */
  Reply = 4,
  /** Answer to a Reply: the sender's entries the bitmap asked for that the other side listed nothing newer of. */
  Items = 5,
  /**
   * A Reply that holds back entries the sender guesses older than the receiver's, with a claim per
   * requested hash: the age class of the held-back entry it pairs with. Answer with Items or PartialItems, even empty.
   */
  PartialReply = 6,
  /** Items that hold back entries the claims showed older than the receiver's: answer with Items, even empty. */
  PartialItems = 7
}

export type ReconcileRange =
  | { upper: Bound, mode: RangeMode.Skip }
  | { upper: Bound, mode: RangeMode.Digest, digest: Uint8Array }
  | { upper: Bound, mode: RangeMode.Fingerprint, fingerprint: Uint8Array }
  /** `hashes` is the concatenation of ITEM_HASH_BYTES-byte hashes; `newestMs` the largest timestampMs of their entries (0 if none). */
  | { upper: Bound, mode: RangeMode.Hashes, hashes: Uint8Array, newestMs: number }
  | { upper: Bound, mode: RangeMode.Reply, entries: IndexEntry[], request: Uint8Array }
  /** `claims`: one byte per set bit of `request`, in order: an age class, or NO_CLAIM. */
  | { upper: Bound, mode: RangeMode.PartialReply, entries: IndexEntry[], request: Uint8Array, claims: Uint8Array }
  | { upper: Bound, mode: RangeMode.Items | RangeMode.PartialItems, entries: IndexEntry[] }

export interface ReconcileMessage {
  type: MessageType.Reconcile
  /** Present only in the initiator's first message. */
  salt: Uint8Array | undefined
  ranges: ReconcileRange[]
}

/** A list of entries; the first name is front-coded against the range's lower bound, each next against the one before. */
function writeEntries (w: Writer, lower: Uint8Array, entries: IndexEntry[], baseMs: number): void {
  w.uvarint(entries.length)
  let prev = lower
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8')
    writeKey(w, prev, name)
    w.uvarint(baseMs - e.timestampMs).bytes(e.id)
    prev = name
  }
}

/** Entries in strictly ascending key order, each inside [lower, upper). */
function readEntries (r: Reader, lower: Uint8Array, upper: Bound, time: Timestamps, tally: Tally): IndexEntry[] {
  const n = readCount(r, MAX_ITEMS_PER_LIST, 'entries')
  tally('list counts')
  const entries: IndexEntry[] = []
  let prev = lower
  for (let i = 0; i < n; i++) {
    const key = readKey(r, prev, 'entry name')
    tally('entry names')
    if (key.length === 0) throw new DmError('ERR_DECODE', 'entry has an empty name')
    if (i > 0 && Buffer.compare(key, prev) <= 0) throw new DmError('ERR_DECODE', 'entries are not in ascending order')
    if ((i === 0 && Buffer.compare(key, lower) < 0) || (upper !== null && Buffer.compare(key, upper) >= 0)) throw new DmError('ERR_DECODE', 'entry lies outside its range')
    const view = Buffer.from(key.buffer, key.byteOffset, key.length)
    // Names are ASCII in practice (docs/PROTOCOL.md section 1): skip the UTF-8 round trip for them.
    const ascii = isAscii(view)
    const name = ascii ? view.toString('latin1') : view.toString('utf8')
    if (!ascii && !Buffer.from(name, 'utf8').equals(view)) throw new DmError('ERR_DECODE', 'entry name is not UTF-8')
    const timestampMs = time.read()
    tally('entry timestamps')
    entries.push({ name, timestampMs, id: new Uint8Array(r.bytes(32)) })
    tally('entry ids')
    prev = key
  }
  return entries
}

/** The newest timestamp a message carries (0 if none): the others are sent as their age before it. */
function newestOf (ranges: ReconcileRange[]): number {
  let newest = 0
  for (const r of ranges) {
    if (r.mode === RangeMode.Hashes) newest = Math.max(newest, r.newestMs)
    else if ('entries' in r) for (const e of r.entries) newest = Math.max(newest, e.timestampMs)
  }
  return newest
}

/** Writes a message; `peerBounds` are the bounds of the message it answers (none for the first). */
export function writeReconcile (w: Writer, m: ReconcileMessage, peerBounds: readonly Bound[] = []): void {
  w.u8(RECONCILE_VERSION)
  if (m.salt === undefined) w.u8(0)
  else w.u8(m.salt.length).bytes(m.salt)
  const baseMs = newestOf(m.ranges)
  w.uvarint(baseMs)
  w.uvarint(m.ranges.length)
  const refs = peerBoundsOf(peerBounds)
  let prev: Uint8Array = new Uint8Array(0)
  for (const range of m.ranges) {
    const k = refs.find(prev, range.upper)
    w.u8(range.mode | Math.min(k, REF_VARINT) << REF_SHIFT)
    if (k >= REF_VARINT) w.uvarint(k - REF_VARINT)
    // +∞ is the empty bound: no upper bound is ever the empty key, the least of all.
    else if (k === 0) writeKey(w, range.upper === null ? new Uint8Array(0) : prev, range.upper ?? new Uint8Array(0))
    switch (range.mode) {
      case RangeMode.Skip: break
      case RangeMode.Digest: w.bytes(range.digest); break
      case RangeMode.Fingerprint: w.bytes(range.fingerprint); break
      case RangeMode.Hashes: w.uvarint(baseMs - range.newestMs).uvarint(range.hashes.length / ITEM_HASH_BYTES).bytes(range.hashes); break
      case RangeMode.Reply: writeEntries(w, prev, range.entries, baseMs); w.u8(range.request.length).bytes(range.request); break
      case RangeMode.PartialReply: writeEntries(w, prev, range.entries, baseMs); w.u8(range.request.length).bytes(range.request).bytes(range.claims); break
      case RangeMode.Items: case RangeMode.PartialItems: writeEntries(w, prev, range.entries, baseMs); break
    }
    if (range.upper !== null) prev = range.upper
  }
}

/** Counts the bytes just read under a label (bench/reconcile.mjs --breakdown), or does nothing. */
type Tally = (what: string) => void

/** Reads a message; `peerBounds` are the bounds of the message it answers, the last one we sent (none before the first). */
export function readReconcile (r: Reader, peerBounds: readonly Bound[] = [], onBytes?: (what: string, bytes: number) => void): ReconcileMessage {
  let mark = r.remaining + 1 // the type byte, read by decodeMessage
  const tally: Tally = onBytes === undefined ? () => {} : what => { onBytes(what, mark - r.remaining); mark = r.remaining }
  const version = r.u8()
  if (version !== RECONCILE_VERSION) throw new DmError('ERR_DECODE', `reconcile version ${version} is not supported (only ${RECONCILE_VERSION})`)
  const saltLength = r.u8()
  if (saltLength !== 0 && saltLength !== SALT_BYTES) throw new DmError('ERR_DECODE', `reconcile salt of ${saltLength} bytes (0 or ${SALT_BYTES})`)
  const salt = saltLength === 0 ? undefined : new Uint8Array(r.bytes(saltLength))
  const time = timestamps(r, r.uvarint())
  const count = readCount(r, MAX_RANGES_PER_MESSAGE, 'ranges')
  if (count === 0) throw new DmError('ERR_DECODE', 'reconcile lists no ranges')
  tally('headers')
  const refs = peerBoundsOf(peerBounds)
  const ranges: ReconcileRange[] = []
  let lower: Uint8Array = new Uint8Array(0)
  for (let i = 0; i < count; i++) {
    const head = r.u8()
    const mode = head & ((1 << REF_SHIFT) - 1)
    const ref = head >> REF_SHIFT
    let upper: Bound
    if (ref === 0) {
      const key = readKey(r, lower, 'range bound')
      upper = key.length === 0 ? null : key
    } else {
      upper = refs.resolve(lower, ref === REF_VARINT ? REF_VARINT + r.uvarint() : ref)
    }
    if (upper !== null && Buffer.compare(upper, lower) <= 0) throw new DmError('ERR_DECODE', 'ranges are out of order or overlap')
    if ((upper === null) !== (i === count - 1)) throw new DmError('ERR_DECODE', 'the last range, and only it, must end at +∞')
    tally('bounds and modes')
    switch (mode) {
      case RangeMode.Skip: ranges.push({ upper, mode }); break
      case RangeMode.Digest: ranges.push({ upper, mode, digest: new Uint8Array(r.bytes(DIGEST_BYTES)) }); tally('digests'); break
      case RangeMode.Fingerprint: ranges.push({ upper, mode, fingerprint: new Uint8Array(r.bytes(FINGERPRINT_BYTES)) }); tally('fingerprints'); break
      case RangeMode.Hashes: {
        const newestMs = time.read()
        const n = readCount(r, MAX_HASHES_PER_RANGE, 'item hashes')
        tally('hash counts and newest')
        ranges.push({ upper, mode, hashes: new Uint8Array(r.bytes(n * ITEM_HASH_BYTES)), newestMs })
        tally('item hashes')
        break
      }
      case RangeMode.Reply: case RangeMode.PartialReply: {
        const entries = readEntries(r, lower, upper, time, tally)
        const n = r.u8()
        if (n > MAX_REQUEST_BYTES) throw new DmError('ERR_DECODE', `reply bitmap of ${n} bytes (at most ${MAX_REQUEST_BYTES})`)
        const request = new Uint8Array(r.bytes(n))
        tally('request bitmaps')
        if (mode === RangeMode.Reply) ranges.push({ upper, mode, entries, request })
        else ranges.push({ upper, mode, entries, request, claims: readClaims(r, request) })
        tally('claims')
        break
      }
      case RangeMode.Items: case RangeMode.PartialItems: ranges.push({ upper, mode, entries: readEntries(r, lower, upper, time, tally) }); break
      default: throw new DmError('ERR_DECODE', `unknown range mode ${mode}`)
    }
    if (upper !== null) lower = upper
  }
  time.end()
  return { type: MessageType.Reconcile, salt, ranges }
}

/** Encodes a Reconcile frame that answers a message with bounds `peerBounds` (none for the first). */
export function encodeReconcile (m: Omit<ReconcileMessage, 'type'>, peerBounds: readonly Bound[]): Buffer {
  const w = new Writer().u8(MessageType.Reconcile)
  writeReconcile(w, { type: MessageType.Reconcile, ...m }, peerBounds)
  return w.finish()
}

/**
 * Decodes a Reconcile frame from an untrusted peer that answers our last message, whose bounds were
 * `peerBounds` (none before our first); `onBytes` tallies what the bytes carry (bench/reconcile.mjs --breakdown).
 */
export function decodeReconcile (frame: Uint8Array, peerBounds: readonly Bound[], onBytes?: (what: string, bytes: number) => void): ReconcileMessage {
  if (frame.length > MAX_RECONCILE_BYTES) throw new DmError('ERR_DECODE', `reconcile message of ${frame.length} bytes exceeds ${MAX_RECONCILE_BYTES}`)
  const r = new Reader(frame, 'message')
  const type = r.u8()
  if (type !== MessageType.Reconcile) throw new DmError('ERR_DECODE', `expected message type Reconcile, got ${MessageType[type] ?? type}`)
  const m = readReconcile(r, peerBounds, onBytes)
  r.end()
  return m
}

/** The bounds of a message: what its answer may refer to. */
export const boundsOf = (m: Pick<ReconcileMessage, 'ranges'>): Bound[] => m.ranges.map(r => r.upper)
