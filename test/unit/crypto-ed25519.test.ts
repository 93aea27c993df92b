import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import {
  isCanonicalPoint, isReducedScalar, isSmallOrderPoint, publicKeyFault, sign, signatureFault, verify
} from '../../src/crypto/ed25519.js'
import { parsePublicKeyBase64 } from '../../src/crypto/keys.js'
import { build, challenge, fromLe, L, le32, P, torsionPoints } from '../vectors/generate-ed25519.js'
import { REPO_ROOT, keyFromSeed } from './helpers.js'

ed.hashes.sha512 = sha512
const { Point } = ed

interface Vectors {
  smallOrderPoints: string[]
  keys: Array<{ description: string, publicKeyHex: string, publicKeyBase64: string, valid: boolean, fault: string | null }>
  signatures: Array<{ description: string, publicKeyHex: string, messageHex: string, signatureHex: string, valid: boolean, fault: string | null, nobleStrict: boolean }>
}
const vectors: Vectors = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'vectors', 'ed25519-strict.json'), 'utf8'))
const b = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

/**
 * The rules of docs/PROTOCOL.md section 3.1 written a second way, on
 * @noble/ed25519 alone: its strict mode (canonical A and R, S < L, A not of
 * small order, the cofactored equation) plus the two rules it leaves out, R
 * not of small order and the cofactorless equation R = [S]B - [k]A.
 */
function nobleReference (pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (!ed.verify(sig, msg, pub, { zip215: false })) return false
  const R = Point.fromBytes(sig.subarray(0, 32), false)
  if (R.isSmallOrder()) return false
  const A = Point.fromBytes(pub, false)
  const k = challenge(sig.subarray(0, 32), pub, msg)
  return Point.BASE.multiply(fromLe(sig.subarray(32)), false).subtract(A.multiply(k, false)).equals(R)
}

test('the vector file is what the generator produces from the curve', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(build())), {
    smallOrderPoints: vectors.smallOrderPoints, keys: vectors.keys, signatures: vectors.signatures
  })
})

test('the vectors cover every fault, and valid cases, for keys and for signatures', () => {
  assert.deepEqual(new Set(vectors.keys.map(k => k.fault)), new Set([null, 'key-small-order', 'key-non-canonical', 'key-not-on-curve']))
  assert.deepEqual(new Set(vectors.signatures.map(s => s.fault)), new Set([
    null, 'equation', 'key-small-order', 'key-non-canonical', 'key-not-on-curve', 'r-small-order', 'r-non-canonical', 's-not-reduced'
  ]))
  const keys = new Set(vectors.keys.map(k => k.publicKeyBase64))
  assert.ok(keys.has('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), 'the all-zero key')
  assert.ok(keys.has('AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), 'the identity')
})

test('the small-order blocklist is exactly the 8 points of order dividing 8, derived from the curve', () => {
  const derived = torsionPoints()
  assert.equal(new Set(derived.map(t => t.toHex())).size, 8)
  for (const t of derived) assert.ok(t.multiply(8n, false).is0())
  assert.deepEqual(derived.map(t => t.toHex()).sort(), vectors.smallOrderPoints)
  for (const h of vectors.smallOrderPoints) assert.ok(isSmallOrderPoint(b(h)), h)
  // and nothing else: no valid key, no other encoding of y = 0 or 1
  for (const k of vectors.keys.filter(k => k.fault !== 'key-small-order')) assert.equal(isSmallOrderPoint(b(k.publicKeyHex)), false, k.description)
  for (let i = 0; i < 50; i++) assert.equal(isSmallOrderPoint(ed.getPublicKey(randomBytes(32))), false)
})

test('byte checks: canonical points and reduced scalars at their boundaries', () => {
  assert.ok(isCanonicalPoint(le32(P - 1n)))
  assert.ok(!isCanonicalPoint(le32(P)))
  assert.ok(!isCanonicalPoint(le32(2n ** 255n - 1n)))
  const withSign = (y: bigint): Uint8Array => { const x = le32(y); x[31] |= 0x80; return x }
  assert.ok(isCanonicalPoint(withSign(P - 2n)))
  assert.ok(!isCanonicalPoint(withSign(P)))
  assert.ok(!isCanonicalPoint(withSign(1n)), 'x = 0 with the sign bit')
  assert.ok(!isCanonicalPoint(withSign(P - 1n)), 'x = 0 with the sign bit')
  assert.ok(isCanonicalPoint(withSign(2n)))
  assert.ok(isReducedScalar(le32(0n)))
  assert.ok(isReducedScalar(le32(L - 1n)))
  assert.ok(!isReducedScalar(le32(L)))
  assert.ok(!isReducedScalar(le32(L + 1n)))
  assert.ok(!isReducedScalar(le32(2n ** 253n)))
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), s => isReducedScalar(le32(s)) === (s < L)), { numRuns: 2000 })
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 255n - 1n }), fc.boolean(), (y, sign) => {
    const enc = le32(y); if (sign) enc[31] |= 0x80
    return isCanonicalPoint(enc) === (y < P && !(sign && (y === 1n || y === P - 1n)))
  }), { numRuns: 2000 })
})

for (const k of vectors.keys) {
  test(`key vector "${k.description}": ${k.valid ? 'accepted' : k.fault}`, () => {
    assert.equal(publicKeyFault(b(k.publicKeyHex)) ?? null, k.fault)
    const parsed = parsePublicKeyBase64(k.publicKeyBase64)
    if (k.valid) {
      assert.ok(parsed instanceof Uint8Array, String(parsed))
      assert.equal(Buffer.from(parsed).toString('hex'), k.publicKeyHex)
    } else {
      assert.equal(typeof parsed, 'string')
      assert.ok((parsed as string).includes(`(${k.fault as string})`), parsed as string)
    }
  })
}

for (const s of vectors.signatures) {
  test(`signature vector "${s.description}": ${s.valid ? 'valid' : s.fault}`, () => {
    const [pub, msg, sig] = [b(s.publicKeyHex), b(s.messageHex), b(s.signatureHex)]
    assert.equal(signatureFault(pub, msg, sig) ?? null, s.fault)
    assert.equal(verify(pub, msg, sig), s.valid)
    // noble's strict mode, and the same rules written on noble, agree.
    assert.equal(ed.verify(sig, msg, pub, { zip215: false }), s.nobleStrict)
    assert.equal(nobleReference(pub, msg, sig), s.valid)
  })
}

test('where bare noble strict accepts what these rules refuse, it is only the two rules it leaves out', () => {
  const differ = vectors.signatures.filter(s => s.nobleStrict !== s.valid)
  // noble strict is never stricter than these rules
  for (const s of differ) assert.ok(s.nobleStrict && !s.valid, s.description)
  assert.deepEqual(differ.map(s => s.fault).sort(), ['equation', 'equation', 'r-small-order'])
  for (const s of differ.filter(s => s.fault === 'equation')) {
    // the cofactored equation holds, the cofactorless one does not: a torsion component in R or A
    const R = Point.fromBytes(b(s.signatureHex).subarray(0, 32), false)
    const A = Point.fromBytes(b(s.publicKeyHex), false)
    assert.ok(!R.isTorsionFree() || !A.isTorsionFree(), s.description)
  }
})

test('node:crypto with the checks and noble strict agree on random valid and corrupted signatures', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), fc.nat(511), (seed, msg, bit) => {
    const key = keyFromSeed(seed)
    const sig = sign(key.privateKey, msg)
    assert.ok(verify(key.publicKey, msg, sig))
    assert.ok(ed.verify(sig, msg, key.publicKey, { zip215: false }))
    const bad = Uint8Array.from(sig)
    bad[bit >> 3] ^= 1 << (bit & 7)
    assert.equal(verify(key.publicKey, msg, bad), false)
    assert.equal(nobleReference(key.publicKey, msg, bad), false)
    assert.equal(ed.verify(bad, msg, key.publicKey, { zip215: false }), false)
  }), { numRuns: 50 })
})

test('docs/PROTOCOL.md section 3.2 lists every vector with its verdict', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'PROTOCOL.md'), 'utf8')
  const verdict = (fault: string | null): string => fault === null ? '**valid**' : `\`${fault}\``
  for (const k of vectors.keys) {
    assert.ok(doc.includes(`| \`${k.publicKeyHex}\` | ${verdict(k.fault)} | ${k.description} |`), k.description)
  }
  vectors.signatures.forEach((s, i) => {
    assert.ok(doc.includes(`| ${i} | ${s.description} | ${verdict(s.fault)} | ${s.nobleStrict ? 'accepts' : 'refuses'} |`), s.description)
  })
  for (const h of vectors.smallOrderPoints.filter(h => !/^(00|01|ec)/.test(h))) assert.ok(doc.includes(h), h)
})
