import { createHash } from 'node:crypto'
import { DmError } from '../errors.js'
import { MAX_NAME_BYTES } from '../format/names.js'
import { DIGEST_BYTES, FINGERPRINT_BYTES, ITEM_HASH_BYTES, type Bound, type IndexEntry } from '../protocol/messages.js'

/*
 * The fingerprints of range-based reconciliation (docs/PROTOCOL.md 7.4.3),
 * over an immutable, sorted snapshot of the advertised index.
 *
 * Every entry is serialised once, in key order, into one buffer:
 *   u8 name length · name · version id (32)
 * The list of a range is then a contiguous slice of that buffer, and its
 * fingerprint is one SHA-256 over the slice: no per-entry work, no copies.
 * The encoding is self-delimiting, so different lists never hash the same
 * bytes; a collision of two ranges is a collision of SHA-256.
 */

const TAG_DIGEST = Buffer.from('data-mesher/reconcile/1/digest\0', 'ascii')
const TAG_FINGERPRINT = Buffer.from('data-mesher/reconcile/1/fingerprint\0', 'ascii')
const TAG_ITEM = Buffer.from('data-mesher/reconcile/1/item\0', 'ascii')

/** A snapshot of the advertised index, sorted by name (bytewise UTF-8), with its serialisation cached. */
export interface ReconcileIndex {
  readonly size: number
  entry: (i: number) => IndexEntry
  /** The name of entry i as UTF-8 bytes (a view; do not modify). */
  key: (i: number) => Uint8Array
  /** The first position whose key is ≥ bound (size for +∞). */
  lowerBound: (bound: Bound) => number
  /** The position of the entry with exactly this key, or -1. */
  find: (key: Uint8Array) => number
  /** Unsalted SHA-256 over positions [from, to); the whole index's is computed once. */
  digest: (from: number, to: number) => Uint8Array
  /** Salted fingerprint over positions [from, to). */
  fingerprint: (salt: Uint8Array, from: number, to: number) => Uint8Array
  /** Salted hash of entry i alone. */
  itemHash: (salt: Uint8Array, i: number) => Uint8Array
}

/** Builds the snapshot; entries need not be sorted, names must be distinct. Cache it until the index changes. */
export function createReconcileIndex (entries: Iterable<IndexEntry>): ReconcileIndex {
  const rows = [...entries].map(e => ({ e, key: Buffer.from(e.name, 'utf8') }))
  rows.sort((a, b) => Buffer.compare(a.key, b.key))
  const offsets = new Uint32Array(rows.length + 1)
  let total = 0
  for (let i = 0; i < rows.length; i++) {
    const { e, key } = rows[i]
    if (key.length === 0 || key.length > MAX_NAME_BYTES) throw new DmError('ERR_NAME_INVALID', `an index name of ${key.length} bytes`)
    if (e.id.length !== 32) throw new DmError('ERR_DECODE', 'a version id is not 32 bytes')
    if (i > 0 && Buffer.compare(rows[i - 1].key, key) === 0) throw new DmError('ERR_DECODE', `the index lists "${e.name}" twice`)
    offsets[i] = total
    total += 1 + key.length + 32
  }
  offsets[rows.length] = total
  const buf = Buffer.allocUnsafe(total)
  const keys: Buffer[] = []
  for (let i = 0; i < rows.length; i++) {
    const { e, key } = rows[i]
    const at = offsets[i]
    buf[at] = key.length
    key.copy(buf, at + 1)
    buf.set(e.id, at + 1 + key.length)
    keys.push(buf.subarray(at + 1, at + 1 + key.length))
  }
  const slice = (from: number, to: number): Buffer => buf.subarray(offsets[from], offsets[to])
  const whole = createHash('sha256').update(TAG_DIGEST).update(buf).digest()

  function lowerBound (bound: Bound): number {
    if (bound === null) return rows.length
    let lo = 0
    let hi = rows.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (Buffer.compare(keys[mid], bound) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  return {
    size: rows.length,
    entry: i => rows[i].e,
    key: i => keys[i],
    lowerBound,
    find (key) {
      const i = lowerBound(key)
      return i < rows.length && Buffer.compare(keys[i], key) === 0 ? i : -1
    },
    digest (from, to) {
      if (from === 0 && to === rows.length) return whole
      return new Uint8Array(createHash('sha256').update(TAG_DIGEST).update(slice(from, to)).digest().subarray(0, DIGEST_BYTES))
    },
    fingerprint: (salt, from, to) =>
      new Uint8Array(createHash('sha256').update(TAG_FINGERPRINT).update(salt).update(slice(from, to)).digest().subarray(0, FINGERPRINT_BYTES)),
    itemHash: (salt, i) =>
      new Uint8Array(createHash('sha256').update(TAG_ITEM).update(salt).update(slice(i, i + 1)).digest().subarray(0, ITEM_HASH_BYTES))
  }
}
