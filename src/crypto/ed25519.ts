import { createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { Point } from '@noble/ed25519'

/*
 * Strict Ed25519 verification (docs/PROTOCOL.md section 3.1): the rules of
 * libsodium's crypto_sign_verify_detached, RFC 8032 with every encoding
 * ambiguity refused.
 *
 * node:crypto (OpenSSL) does the equation: with a cached KeyObject it verifies
 * about 14x faster than @noble/ed25519 on this hardware (13,000/s against
 * 900/s), which is what makes catching up thousands of versions cost under a
 * second. But OpenSSL accepts small-order and non-canonical public keys, so
 * the identity key `AQAA…` with R = identity and S = 0 "verifies" for every
 * message. The byte checks below run first and refuse those; they cost a few
 * comparisons per signature. Only a new public key is decoded as a curve
 * point (with noble), once, and the verdict is cached.
 */

export const SIGNATURE_BYTES = 64
export const POINT_BYTES = 32

/** Why a public key is refused, in the order the checks run. Stable identifiers: the test vectors use them. */
export type KeyFault =
  | 'key-length'
  | 'key-non-canonical'
  | 'key-small-order'
  | 'key-not-on-curve'

/** Why a signature is refused, in the order the checks run (after the key's). */
export type SignatureFault =
  | KeyFault
  | 'sig-length'
  | 'r-non-canonical'
  | 'r-small-order'
  | 's-not-reduced'
  | 'equation'

/**
 * The 8 points of small order (the torsion subgroup), canonically encoded
 * with either sign bit where x ≠ 0. A public key among them verifies forged
 * signatures; an R among them is never made by an honest signer.
 * test/unit/crypto-ed25519.test.ts derives this list from the curve.
 */
const SMALL_ORDER_HEX = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000', // identity, order 1
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // (0, -1), order 2
  '0000000000000000000000000000000000000000000000000000000000000000', // (sqrt(-1), 0), order 4
  '0000000000000000000000000000000000000000000000000000000000000080', // (-sqrt(-1), 0), order 4
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa' // order 8
])

/** The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const L_LE = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex')

/**
 * RFC 8032 section 5.1.3 decoding, as bytes: y (the low 255 bits) must be
 * below p = 2^255 - 19, and x = 0 (y = 1 or y = p - 1) must have sign bit 0.
 */
export function isCanonicalPoint (b: Uint8Array): boolean {
  if ((b[31] & 0x7f) === 0x7f && b[0] >= 0xed && allEqual(b, 1, 31, 0xff)) return false // y >= p
  if (b[31] === 0x80 && b[0] === 0x01 && allEqual(b, 1, 31, 0x00)) return false // y = 1, x = 0, sign 1
  if (b[31] === 0xff && b[0] === 0xec && allEqual(b, 1, 31, 0xff)) return false // y = p - 1, x = 0, sign 1
  return true
}

/** First bytes of the list: most R values are ruled out without building a string. */
const SMALL_ORDER_FIRST_BYTES = new Set([...SMALL_ORDER_HEX].map(h => parseInt(h.slice(0, 2), 16)))

export function isSmallOrderPoint (b: Uint8Array): boolean {
  if (!SMALL_ORDER_FIRST_BYTES.has(b[0])) return false
  return SMALL_ORDER_HEX.has(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'))
}

/** S < L, reading S as 32 little-endian bytes. */
export function isReducedScalar (s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (s[i] !== L_LE[i]) return s[i] < L_LE[i]
  }
  return false // S = L
}

function allEqual (b: Uint8Array, from: number, to: number, value: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== value) return false
  return true
}

/** The first rule a public key breaks, or undefined for a key signatures may be checked against. */
export function publicKeyFault (raw: Uint8Array): KeyFault | undefined {
  if (raw.length !== POINT_BYTES) return 'key-length'
  if (!isCanonicalPoint(raw)) return 'key-non-canonical'
  if (isSmallOrderPoint(raw)) return 'key-small-order'
  try {
    Point.fromBytes(raw, false) // throws when no x satisfies the curve equation for this y
  } catch {
    return 'key-not-on-curve'
  }
  return undefined
}

/** Public keys are few (one per signer), so each is checked and parsed once; bounded anyway. */
const MAX_CACHED_KEYS = 4096
const keyCache = new Map<string, KeyObject | KeyFault>()

function checkedKey (raw: Uint8Array): KeyObject | KeyFault {
  if (raw.length !== POINT_BYTES) return 'key-length' // before the cache, which holds 32-byte ids only
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url')
  let key = keyCache.get(id)
  if (key === undefined) {
    key = publicKeyFault(raw) ?? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id }, format: 'jwk' })
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear()
    keyCache.set(id, key)
  }
  return key
}

export function sign (privateKey: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(null, message, privateKey))
}

/** The first rule a signature breaks, or undefined when it is valid. */
export function signatureFault (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): SignatureFault | undefined {
  const key = checkedKey(publicKey)
  if (typeof key === 'string') return key
  if (signature.length !== SIGNATURE_BYTES) return 'sig-length'
  const r = signature.subarray(0, POINT_BYTES)
  if (!isCanonicalPoint(r)) return 'r-non-canonical'
  if (isSmallOrderPoint(r)) return 'r-small-order'
  if (!isReducedScalar(signature.subarray(POINT_BYTES))) return 's-not-reduced'
  // OpenSSL computes [S]B - [k]A, encodes it and compares the bytes with R:
  // the cofactorless equation, so R must also be the canonical encoding.
  try {
    return nodeVerify(null, message, key, signature) ? undefined : 'equation'
  } catch {
    return 'equation'
  }
}

/** False for any bad input; see signatureFault() for why. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return signatureFault(publicKey, message, signature) === undefined
}

/** One human phrase per fault, for messages (code matches the fault identifier, never this text). */
export function describeFault (fault: SignatureFault): string {
  switch (fault) {
    case 'key-length': return `public key is not ${POINT_BYTES} bytes`
    case 'key-non-canonical': return 'public key is not the canonical encoding of a point (RFC 8032 section 5.1.3)'
    case 'key-small-order': return 'public key is a point of small order, for which anyone can forge signatures'
    case 'key-not-on-curve': return 'public key is not a point on the Ed25519 curve'
    case 'sig-length': return `signature is not ${SIGNATURE_BYTES} bytes`
    case 'r-non-canonical': return 'signature\'s R is not the canonical encoding of a point'
    case 'r-small-order': return 'signature\'s R is a point of small order'
    case 's-not-reduced': return 'signature\'s S is not below the group order L'
    case 'equation': return 'signature does not match the key and the signed bytes'
  }
}
