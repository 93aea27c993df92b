import { DmError } from '../errors.js'
import type { Reader, Writer } from '../format/binary.js'
import { MAX_NAME_BYTES } from '../format/names.js'

/*
 * The field codecs of a Reconcile message (docs/PROTOCOL.md 7.4.2), below the
 * grammar in reconcile-messages.ts: front-coded keys, references to the
 * bounds of the message answered, timestamps as ages before the message's
 * newest, counts, and the age classes of claims.
 */

/**
 * An upper bound: a key prefix, or null for +∞. A range runs from the previous
 * range's upper bound (the empty key for the first range), inclusive, to its
 * own, exclusive.
 */
export type Bound = Uint8Array | null

/** Longest bound: a prefix of a name. */
const MAX_BOUND_BYTES = MAX_NAME_BYTES

/** A claim byte for a requested hash that no held-back entry pairs with. */
export const NO_CLAIM = 0xff
/** The largest age class: that of 2^53 - 1 ms. */
export const MAX_AGE_CLASS = 211

/**
 * The age class of a timestamp `ageMs` older than the newest of a Hashes range: exact below 16 ms, then
 * four classes per doubling. Non-decreasing in the age, so a smaller class is a strictly smaller age.
 */
export function ageClass (ageMs: number): number {
  if (ageMs < 16) return ageMs
  let e = Math.floor(Math.log2(ageMs))
  // log2 may round across a power of two for large values; 2 ** e is exact.
  if (2 ** e > ageMs) e--
  else if (2 ** (e + 1) <= ageMs) e++
  return 16 + (e - 4) * 4 + (Math.floor(ageMs / 2 ** (e - 2)) - 4)
}

/** Bytes two keys have in common from the start. */
function commonPrefix (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  let i = 0
  while (i < n && a[i] === b[i]) i++
  return i
}

/** A key front-coded against the previous one: shared prefix length, then the rest. */
export function writeKey (w: Writer, prev: Uint8Array, key: Uint8Array): void {
  const shared = commonPrefix(prev, key)
  w.u8(shared).u8(key.length - shared).bytes(key.subarray(shared))
}

/** Reads a front-coded key; the shared length must be the longest common prefix, so every key has one encoding. */
export function readKey (r: Reader, prev: Uint8Array, what: string): Uint8Array {
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

/** A varint count, refused past `max` before anything is allocated for it. */
export function readCount (r: Reader, max: number, what: string): number {
  const n = r.uvarint()
  if (n > max) throw new DmError('ERR_DECODE', `reconcile message lists ${n} ${what} (at most ${max})`)
  return n
}

/** One claim byte per set bit of the request bitmap, each an age class or NO_CLAIM. */
export function readClaims (r: Reader, request: Uint8Array): Uint8Array {
  let n = 0
  for (const b of request) for (let x = b; x !== 0; x &= x - 1) n++
  const claims = new Uint8Array(r.bytes(n))
  if (claims.some(c => c > MAX_AGE_CLASS && c !== NO_CLAIM)) throw new DmError('ERR_DECODE', `a claim beyond age class ${MAX_AGE_CLASS}`)
  return claims
}

/** Reads timestamps as ages before the message's base; at the end, the base must be one of them (or 0 with none): one encoding per message. */
export interface Timestamps { read: () => number, end: () => void }

export function timestamps (r: Reader, baseMs: number): Timestamps {
  let newest = 0
  return {
    read () {
      const age = r.uvarint()
      if (age > baseMs) throw new DmError('ERR_DECODE', `a timestamp ${age} ms before a base of ${baseMs}`)
      newest = Math.max(newest, baseMs - age)
      return baseMs - age
    },
    end () { if (newest !== baseMs) throw new DmError('ERR_DECODE', 'the base timestamp is not the newest the message carries') }
  }
}

const compareBounds = (a: Bound, b: Bound): number => a === null ? (b === null ? 0 : 1) : b === null ? -1 : Buffer.compare(a, b)

/**
 * The bounds of the message being answered (ascending, +∞ last), which a range may refer to instead of
 * spelling its upper bound: reference k is the k-th of them above the range's lower bound.
 */
export function peerBoundsOf (bounds: readonly Bound[]): { find: (lower: Uint8Array, upper: Bound) => number, resolve: (lower: Uint8Array, k: number) => Bound } {
  let p = 0
  const skipTo = (lower: Uint8Array): void => {
    while (p < bounds.length && compareBounds(bounds[p], lower) <= 0) p++
  }
  return {
    find (lower, upper) {
      skipTo(lower)
      for (let q = p; q < bounds.length; q++) {
        const c = compareBounds(bounds[q], upper)
        if (c === 0) return q - p + 1
        if (c > 0) break
      }
      return 0
    },
    resolve (lower, k) {
      skipTo(lower)
      if (p + k > bounds.length) throw new DmError('ERR_DECODE', `a range refers to bound ${k} of the ${bounds.length - p} left in the message it answers`)
      return bounds[p + k - 1]
    }
  }
}

/** A range's head byte: its mode in the low 4 bits, in the high 4 a reference (1 … 14, or 15 and a varint for more), or 0: an explicit key follows. */
export const REF_SHIFT = 4
export const REF_VARINT = 15
