import { RangeMode, ITEM_HASH_BYTES, type Bound, type ReconcileRange } from '../protocol/messages.js'
import type { ReconcileIndex } from './fingerprint.js'

/*
 * The range arithmetic of reconciliation (docs/PROTOCOL.md 7.4.4): what a side
 * says about a range whose fingerprint differs from its own. A small range
 * becomes per-entry hashes; a large one is cut into buckets of near-equal
 * count, each fingerprinted, so the next message recurses only into those
 * that differ.
 */

/** A range where we hold at most this many entries is answered with per-entry hashes rather than split. */
export const LEAF_ENTRIES = 64
/** A differing range where we hold more is split into this many fingerprinted buckets. */
export const SPLIT_BUCKETS = 16

/** The key of a range, for remembering what we asked about it until the answer comes. */
export const rangeKey = (lower: Uint8Array, upper: Bound): string =>
  `${Buffer.from(lower).toString('hex')}:${upper === null ? '' : Buffer.from(upper).toString('hex')}`

/** The shortest key k with prev < k ≤ next: a bound that separates two adjacent entries. */
export function separator (prev: Uint8Array, next: Uint8Array): Uint8Array {
  let i = 0
  while (i < prev.length && prev[i] === next[i]) i++
  return next.slice(0, i + 1)
}

/** The salted hashes of positions [from, to), concatenated, and the newest timestamp among them (0 if none). */
export function hashesOf (index: ReconcileIndex, salt: Uint8Array, from: number, to: number): { hashes: Uint8Array, newestMs: number } {
  const hashes = new Uint8Array((to - from) * ITEM_HASH_BYTES)
  let newestMs = 0
  for (let i = from; i < to; i++) {
    hashes.set(index.itemHash(salt, i), (i - from) * ITEM_HASH_BYTES)
    newestMs = Math.max(newestMs, index.entry(i).timestampMs)
  }
  return { hashes, newestMs }
}

/** A range [from, to) that differs: our hashes if we hold few entries there, else fingerprints of SPLIT_BUCKETS buckets. */
export function describeDiffering (index: ReconcileIndex, salt: Uint8Array, upper: Bound, from: number, to: number): ReconcileRange[] {
  const n = to - from
  if (n <= LEAF_ENTRIES) return [{ upper, mode: RangeMode.Hashes, ...hashesOf(index, salt, from, to) }]
  const out: ReconcileRange[] = []
  let start = from
  for (let k = 1; k < SPLIT_BUCKETS; k++) {
    const end = from + Math.floor(k * n / SPLIT_BUCKETS)
    out.push({ upper: separator(index.key(end - 1), index.key(end)), mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt, start, end) })
    start = end
  }
  out.push({ upper, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(salt, start, to) })
  return out
}
