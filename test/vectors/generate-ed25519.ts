/*
 * Writes test/vectors/ed25519-strict.json: the edge cases of strict Ed25519
 * verification that docs/PROTOCOL.md section 3.1 specifies. Run with:
 *
 *   node --import tsx test/vectors/generate-ed25519.ts          # rewrite the file
 *   node --import tsx test/vectors/generate-ed25519.ts --check  # exit 1 if it differs
 *
 * The cases follow the "speccheck" vectors of Chalkias, Garillot and
 * Nikolaenko, "Taming the many EdDSAs" (2020): small-order and non-canonical
 * keys and R, S >= L, and mixed-order points where the cofactored and the
 * cofactorless equations disagree. They are built here from the curve with
 * @noble/ed25519's point arithmetic, never with src/, so they state the rules
 * independently of the implementation. Everything is deterministic: fixed
 * seeds and messages, and searches that always stop at the same place.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'

ed.hashes.sha512 = sha512
const { Point } = ed
type Pt = InstanceType<typeof Point>

const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ed25519-strict.json')

/** The field prime p and the prime group order L. */
export const P = 2n ** 255n - 19n
export const L = 2n ** 252n + 27742317777372353535851937790883648493n

export function le32 (n: bigint): Uint8Array {
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++) { out[i] = Number(n & 0xffn); n >>= 8n }
  if (n !== 0n) throw new RangeError('does not fit in 32 bytes')
  return out
}

export function fromLe (b: Uint8Array): bigint {
  let n = 0n
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i])
  return n
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'ascii'))

/** k = SHA-512(R || A || M) mod L, over the bytes as given (RFC 8032 section 5.1.7). */
export function challenge (r: Uint8Array, a: Uint8Array, m: Uint8Array): bigint {
  return fromLe(sha512(cat(r, a, m))) % L
}

/**
 * The 8 points of small order, derived from the curve: [L]Q of any point Q
 * lies in the torsion subgroup, and the first one of order 8 generates it.
 */
export function torsionPoints (): Pt[] {
  for (let y = 2n; ; y++) {
    let q: Pt
    try { q = Point.fromBytes(le32(y), false) } catch { continue }
    const t = q.multiply(L - 1n, false).add(q) // [L]Q
    if (t.multiply(4n, false).is0()) continue // order below 8
    return Array.from({ length: 8 }, (_, i) => i === 0 ? Point.ZERO : t.multiply(BigInt(i), false))
  }
}

interface KeyVector { description: string, publicKeyHex: string, publicKeyBase64: string, valid: boolean, fault: string | null }
interface SigVector {
  description: string
  publicKeyHex: string
  messageHex: string
  signatureHex: string
  /** the verdict of docs/PROTOCOL.md section 3.1 */
  valid: boolean
  /** the first rule broken, as src/crypto/ed25519.ts names it */
  fault: string | null
  /** what @noble/ed25519's verify says with { zip215: false } (cofactored RFC 8032, small-order R allowed) */
  nobleStrict: boolean
}

export function build (): { smallOrderPoints: string[], keys: KeyVector[], signatures: SigVector[] } {
  const torsion = torsionPoints()
  const t8 = torsion[1] // order 8
  const t4 = torsion[2] // order 4
  // -T is in the subgroup with T, so the 8 encodings include both signs of x where x != 0.
  const smallOrderPoints = torsion.map(t => hex(t.toBytes())).sort()

  const seed = new Uint8Array(Array.from({ length: 32 }, (_, i) => i + 1)) // the key of version-v1.json
  const signer = ed.utils.getExtendedPublicKey(seed)
  const a = signer.scalar
  const A = signer.pointBytes
  const Apoint = signer.point
  const nobleStrict = (pub: Uint8Array, m: Uint8Array, sig: Uint8Array): boolean => ed.verify(sig, m, pub, { zip215: false })

  const keys: KeyVector[] = []
  const key = (description: string, b: Uint8Array, fault: string | null): void => {
    keys.push({ description, publicKeyHex: hex(b), publicKeyBase64: Buffer.from(b).toString('base64'), valid: fault === null, fault })
  }
  key('valid: the public key of seed 0x01..0x20 (test/vectors/version-v1.json)', A, null)
  key('valid: the public key of seed 0x42 x 32', ed.getPublicKey(new Uint8Array(32).fill(0x42)), null)
  for (const [i, t] of torsion.entries()) {
    const order = [1, 8, 4, 8, 2, 8, 4, 8][i]
    const b = t.toBytes()
    const name = fromLe(b) === 0n ? ' (all zero bytes)' : fromLe(b) === 1n ? ' (the identity, AQAA...)' : ''
    key(`small order ${order}${name}`, b, 'key-small-order')
  }
  const signed = (y: bigint, sign: boolean): Uint8Array => { const b = le32(y); if (sign) b[31] |= 0x80; return b }
  key('non-canonical: y = p, which reduces to y = 0 (small order 4)', signed(P, false), 'key-non-canonical')
  key('non-canonical: y = p + 1, which reduces to the identity', signed(P + 1n, false), 'key-non-canonical')
  key('non-canonical: y = p + 1 with the sign bit set', signed(P + 1n, true), 'key-non-canonical')
  key('non-canonical: the identity (y = 1, x = 0) with the sign bit set', signed(1n, true), 'key-non-canonical')
  key('non-canonical: (0, -1) (y = p - 1, x = 0) with the sign bit set', signed(P - 1n, true), 'key-non-canonical')
  for (let y = 2n; y < 19n; y++) {
    let q: Pt
    try { q = Point.fromBytes(le32(y), false) } catch { continue }
    if (q.isSmallOrder()) continue
    key(`non-canonical: y = p + ${y}, which reduces to a point of large order`, signed(P + y, false), 'key-non-canonical')
    break
  }
  const offCurve = (() => {
    for (let y = 2n; ; y++) {
      try { Point.fromBytes(le32(y), false) } catch { return y }
    }
  })()
  key(`not on the curve: y = ${offCurve} has no x`, le32(offCurve), 'key-not-on-curve')
  key('valid by these rules: a mixed-order key, [a]B + T8 (only the cofactored equation can tell; see the signature vectors)', Apoint.add(t8).toBytes(), null)

  const signatures: SigVector[] = []
  const sig = (description: string, pub: Uint8Array, m: Uint8Array, s: Uint8Array, fault: string | null): void => {
    signatures.push({ description, publicKeyHex: hex(pub), messageHex: hex(m), signatureHex: hex(s), valid: fault === null, fault, nobleStrict: nobleStrict(pub, m, s) })
  }
  /** A signature by the seed's key with a chosen R point: S = r + k·a, valid whenever R = [r]B. */
  const withR = (rBytes: Uint8Array, r: bigint, m: Uint8Array, pub = A): Uint8Array =>
    cat(rBytes, le32((r + challenge(rBytes, pub, m) * a) % L))

  const msg = ascii('data-mesher strict Ed25519')
  const good = ed.sign(msg, seed)
  sig('valid: an ordinary signature', A, msg, good, null)
  sig('valid: an ordinary signature over the empty message', A, new Uint8Array(0), ed.sign(new Uint8Array(0), seed), null)
  sig('wrong message: the valid signature over one changed byte', A, ascii('data-mesher strict Ed25519!'), good, 'equation')

  // Anyone's forgery: a small-order key, a small-order R and S = 0 satisfy
  // R = [S]B - [k]A for a share of messages (all of them for the identity).
  for (const t of torsion) {
    const pub = t.toBytes()
    let found = false
    for (let i = 0; !found; i++) {
      const m = ascii(`forged by anyone, attempt ${i}`)
      for (const r of torsion) {
        const rb = r.toBytes()
        if (hex(t.multiply(challenge(rb, pub, m), false).negate().toBytes()) !== hex(rb)) continue
        sig(`forgery: small-order key ${hex(pub).slice(0, 8)}..., small-order R, S = 0; the equation holds`, pub, m, cat(rb, le32(0n)), 'key-small-order')
        found = true
        break
      }
    }
  }
  const identity = torsion[0].toBytes()
  const zeroS = cat(identity, le32(0n))
  sig('forgery: the identity key written non-canonically (y = p + 1), R = identity, S = 0', signed(P + 1n, false), msg, zeroS, 'key-non-canonical')
  sig('forgery: the identity key with the sign bit set, R = identity, S = 0', signed(1n, true), msg, zeroS, 'key-non-canonical')
  sig(`key not on the curve (y = ${offCurve})`, le32(offCurve), msg, good, 'key-not-on-curve')

  sig('small-order R = identity and S = 0 with a valid key: the equation fails too', A, msg, zeroS, 'r-small-order')
  // Only the key's owner can do this: r = 0, so R = identity and S = k·a.
  sig('small-order R = identity made by the key\'s owner (S = k·a): both equations hold; refused', A, msg, withR(identity, 0n, msg), 'r-small-order')
  sig('non-canonical R: the identity written as y = p + 1, S = k·a (a reducing verifier accepts it)', A, msg, withR(signed(P + 1n, false), 0n, msg), 'r-non-canonical')
  sig('non-canonical R: the identity with the sign bit set, S = k·a', A, msg, withR(signed(1n, true), 0n, msg), 'r-non-canonical')

  const sGood = fromLe(good.subarray(32))
  sig('S + L: the valid signature with L added to S (the equation holds mod L)', A, msg, cat(good.subarray(0, 32), le32(sGood + L)), 's-not-reduced')
  sig('S = L exactly', A, msg, cat(good.subarray(0, 32), le32(L)), 's-not-reduced')
  const highS = cat(good.subarray(0, 32), good.subarray(32)); highS[63] |= 0x80
  sig('S with its top bit set', A, msg, highS, 's-not-reduced')

  // Mixed order: a torsion part in R or A. The cofactored equation ignores it,
  // the cofactorless one does not; these rules use the cofactorless one.
  const r0 = 0x5eedn
  const mixedR = Point.BASE.multiply(r0).add(t8).toBytes()
  sig('mixed-order R = [r]B + T8, S = r + k·a: only the cofactored equation holds', A, msg, withR(mixedR, r0, msg), 'equation')
  const mixedA = Apoint.add(t4).toBytes() // [a]B + T4: its owner knows a
  for (const [wantBoth, label] of [[true, 'both equations hold'], [false, 'only the cofactored equation holds']] as const) {
    for (let r = 1n; ; r++) {
      const rb = Point.BASE.multiply(r).toBytes()
      const k = challenge(rb, mixedA, msg)
      if ((k % 4n === 0n) !== wantBoth) continue // [k]T4 vanishes exactly when 4 divides k
      sig(`mixed-order key [a]B + T4, R = [r]B, S = r + k·a: ${label}`, mixedA, msg, withR(rb, r, msg, mixedA), wantBoth ? null : 'equation')
      break
    }
  }
  return { smallOrderPoints, keys, signatures }
}

function main (): void {
  const text = JSON.stringify({
    description: 'Strict Ed25519 verification vectors for docs/PROTOCOL.md section 3.1 (generated by test/vectors/generate-ed25519.ts). Hex is the raw bytes; a signature is R (32 bytes) || S (32 bytes, little-endian).',
    ...build()
  }, null, 2) + '\n'
  if (process.argv.includes('--check')) {
    const same = fs.existsSync(OUT) && fs.readFileSync(OUT, 'utf8') === text
    console.log(same ? `${OUT} is up to date` : `${OUT} differs from what the generator produces`)
    process.exit(same ? 0 : 1)
  }
  fs.writeFileSync(OUT, text)
  console.log(`wrote ${OUT}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()
