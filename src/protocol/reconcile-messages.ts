import { isAscii } from 'node:buffer'
import { DmError } from '../errors.js'
import { Reader, type Writer } from '../format/binary.js'
import { MAX_NAME_BYTES } from '../format/names.js'
import { MessageType, type IndexEntry } from './messages.js'

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

/** 2: entry timestamps as varints, Hashes carry the sender's newest timestamp, and PartialReply. */
export const RECONCILE_VERSION = 2
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
/** Longest bound: a prefix of a name. */
const MAX_BOUND_BYTES = MAX_NAME_BYTES

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
  /** A Reply that holds back entries the sender guesses older than the receiver's: answer with Items, even empty. */
  PartialReply = 6
}

/**
 * An upper bound: a key prefix, or null for +∞. A range runs from the previous
 * range's upper bound (the empty key for the first range), inclusive, to its
 * own, exclusive.
 */
export type Bound = Uint8Array | null

export type ReconcileRange =
  | { upper: Bound, mode: RangeMode.Skip }
  | { upper: Bound, mode: RangeMode.Digest, digest: Uint8Array }
  | { upper: Bound, mode: RangeMode.Fingerprint, fingerprint: Uint8Array }
  /** `hashes` is the concatenation of ITEM_HASH_BYTES-byte hashes; `newestMs` the largest timestampMs of their entries (0 if none). */
  | { upper: Bound, mode: RangeMode.Hashes, hashes: Uint8Array, newestMs: number }
  | { upper: Bound, mode: RangeMode.Reply | RangeMode.PartialReply, entries: IndexEntry[], request: Uint8Array }
  | { upper: Bound, mode: RangeMode.Items, entries: IndexEntry[] }

export interface ReconcileMessage {
  type: MessageType.Reconcile
  /** Present only in the initiator's first message. */
  salt: Uint8Array | undefined
  ranges: ReconcileRange[]
}

/** Bytes two keys have in common from the start. */
export function commonPrefix (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  let i = 0
  while (i < n && a[i] === b[i]) i++
  return i
}

/** A key front-coded against the previous one: shared prefix length, then the rest. */
function writeKey (w: Writer, prev: Uint8Array, key: Uint8Array): void {
  const shared = commonPrefix(prev, key)
  w.u8(shared).u8(key.length - shared).bytes(key.subarray(shared))
}

/** Reads a front-coded key; the shared length must be the longest common prefix, so every key has one encoding. */
function readKey (r: Reader, prev: Uint8Array, what: string): Uint8Array {
  const shared = r.u8()
  const suffix = r.bytes(r.u8())
  if (shared > prev.length) throw new DmError('ERR_DECODE', `${what} shares ${shared} bytes with a ${prev.length}-byte predecessor`)
  if (shared + suffix.length > MAX_BOUND_BYTES) throw new DmError('ERR_DECODE', `${what} is longer than ${MAX_BOUND_BYTES} bytes`)
  if (shared < prev.length && suffix.length > 0 && suffix[0] === prev[shared]) throw new DmError('ERR_DECODE', `${what} is not front-coded canonically`)
  const key = new Uint8Array(shared + suffix.length)
  key.set(prev.subarray(0, shared))
  key.set(suffix, shared)
  return key
}

function writeEntries (w: Writer, entries: IndexEntry[]): void {
  w.u16(entries.length)
  let prev: Uint8Array = new Uint8Array(0)
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8')
    writeKey(w, prev, name)
    w.uvarint(e.timestampMs).bytes(e.id)
    prev = name
  }
}

/** Entries in strictly ascending key order, each inside [lower, upper). */
function readEntries (r: Reader, lower: Uint8Array, upper: Bound, tally: Tally): IndexEntry[] {
  const n = r.count16(MAX_ITEMS_PER_LIST)
  tally('list counts')
  const entries: IndexEntry[] = []
  let prev: Uint8Array = new Uint8Array(0)
  for (let i = 0; i < n; i++) {
    const key = readKey(r, prev, 'entry name')
    tally('entry names')
    if (key.length === 0) throw new DmError('ERR_DECODE', 'entry has an empty name')
    if (i > 0 && Buffer.compare(key, prev) <= 0) throw new DmError('ERR_DECODE', 'entries are not in ascending order')
    if (Buffer.compare(key, lower) < 0 || (upper !== null && Buffer.compare(key, upper) >= 0)) throw new DmError('ERR_DECODE', 'entry lies outside its range')
    const view = Buffer.from(key.buffer, key.byteOffset, key.length)
    // Names are ASCII in practice (docs/PROTOCOL.md section 1): skip the UTF-8 round trip for them.
    const name = isAscii(view) ? view.toString('latin1') : view.toString('utf8')
    if (!isAscii(view) && !Buffer.from(name, 'utf8').equals(view)) throw new DmError('ERR_DECODE', 'entry name is not UTF-8')
    const timestampMs = r.uvarint()
    tally('entry timestamps')
    entries.push({ name, timestampMs, id: new Uint8Array(r.bytes(32)) })
    tally('entry ids')
    prev = key
  }
  return entries
}

export function writeReconcile (w: Writer, m: ReconcileMessage): void {
  w.u8(RECONCILE_VERSION)
  if (m.salt === undefined) w.u8(0)
  else w.u8(m.salt.length).bytes(m.salt)
  w.u16(m.ranges.length)
  let prev: Uint8Array = new Uint8Array(0)
  for (const range of m.ranges) {
    // +∞ is the empty bound: no upper bound is ever the empty key, the least of all.
    writeKey(w, range.upper === null ? new Uint8Array(0) : prev, range.upper ?? new Uint8Array(0))
    w.u8(range.mode)
    switch (range.mode) {
      case RangeMode.Skip: break
      case RangeMode.Digest: w.bytes(range.digest); break
      case RangeMode.Fingerprint: w.bytes(range.fingerprint); break
      case RangeMode.Hashes: w.uvarint(range.newestMs).u16(range.hashes.length / ITEM_HASH_BYTES).bytes(range.hashes); break
      case RangeMode.Reply: case RangeMode.PartialReply: writeEntries(w, range.entries); w.u8(range.request.length).bytes(range.request); break
      case RangeMode.Items: writeEntries(w, range.entries); break
    }
    if (range.upper !== null) prev = range.upper
  }
}

/** Counts the bytes just read under a label (bench/reconcile.mjs --breakdown), or does nothing. */
type Tally = (what: string) => void

export function readReconcile (r: Reader, onBytes?: (what: string, bytes: number) => void): ReconcileMessage {
  let mark = r.remaining + 1 // the type byte, read by decodeMessage
  const tally: Tally = onBytes === undefined ? () => {} : what => { onBytes(what, mark - r.remaining); mark = r.remaining }
  const version = r.u8()
  if (version !== RECONCILE_VERSION) throw new DmError('ERR_DECODE', `reconcile version ${version} is not supported (only ${RECONCILE_VERSION})`)
  const saltLength = r.u8()
  if (saltLength !== 0 && saltLength !== SALT_BYTES) throw new DmError('ERR_DECODE', `reconcile salt of ${saltLength} bytes (0 or ${SALT_BYTES})`)
  const salt = saltLength === 0 ? undefined : new Uint8Array(r.bytes(saltLength))
  const count = r.u16()
  if (count === 0 || count > MAX_RANGES_PER_MESSAGE) throw new DmError('ERR_DECODE', `reconcile lists ${count} ranges (1 to ${MAX_RANGES_PER_MESSAGE})`)
  tally('headers')
  const ranges: ReconcileRange[] = []
  let lower: Uint8Array = new Uint8Array(0)
  for (let i = 0; i < count; i++) {
    const key = readKey(r, lower, 'range bound')
    const upper = key.length === 0 ? null : key
    if (upper !== null && Buffer.compare(upper, lower) <= 0) throw new DmError('ERR_DECODE', 'ranges are out of order or overlap')
    if ((upper === null) !== (i === count - 1)) throw new DmError('ERR_DECODE', 'the last range, and only it, must end at +∞')
    const mode = r.u8()
    tally('bounds and modes')
    switch (mode) {
      case RangeMode.Skip: ranges.push({ upper, mode }); break
      case RangeMode.Digest: ranges.push({ upper, mode, digest: new Uint8Array(r.bytes(DIGEST_BYTES)) }); tally('digests'); break
      case RangeMode.Fingerprint: ranges.push({ upper, mode, fingerprint: new Uint8Array(r.bytes(FINGERPRINT_BYTES)) }); tally('fingerprints'); break
      case RangeMode.Hashes: {
        const newestMs = r.uvarint()
        const n = r.count16(MAX_HASHES_PER_RANGE)
        tally('hash counts and newest')
        ranges.push({ upper, mode, hashes: new Uint8Array(r.bytes(n * ITEM_HASH_BYTES)), newestMs })
        tally('item hashes')
        break
      }
      case RangeMode.Reply: case RangeMode.PartialReply: {
        const entries = readEntries(r, lower, upper, tally)
        const n = r.u8()
        if (n > MAX_REQUEST_BYTES) throw new DmError('ERR_DECODE', `reply bitmap of ${n} bytes (at most ${MAX_REQUEST_BYTES})`)
        ranges.push({ upper, mode, entries, request: new Uint8Array(r.bytes(n)) })
        tally('request bitmaps')
        break
      }
      case RangeMode.Items: ranges.push({ upper, mode, entries: readEntries(r, lower, upper, tally) }); break
      default: throw new DmError('ERR_DECODE', `unknown range mode ${mode}`)
    }
    if (upper !== null) lower = upper
  }
  return { type: MessageType.Reconcile, salt, ranges }
}

/** Bytes of a Reconcile frame (without its length prefix) by what they carry: for bench/reconcile.mjs --breakdown. */
export function tallyReconcile (frame: Uint8Array): Map<string, number> {
  const bytes = new Map<string, number>()
  const r = new Reader(frame, 'message')
  if (r.u8() !== MessageType.Reconcile) throw new DmError('ERR_DECODE', 'not a reconcile message')
  readReconcile(r, (what, n) => bytes.set(what, (bytes.get(what) ?? 0) + n))
  r.end()
  return bytes
}
