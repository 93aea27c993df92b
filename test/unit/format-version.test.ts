import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import {
  EMPTY_SHA256, MAX_ATTACHMENT_BYTES, NETWORK_TAG, VERSION_TAG, VersionKind, compareVersions, decodeEnvelope,
  encodeEnvelope, hex, networkIdFrom, newVersion, sha256, signatureIsValid, signedBytes, versionId,
  type SignedVersion, type VersionHeader
} from '../../src/format/version.js'
import { sign, verify } from '../../src/crypto/ed25519.js'
import { Reader, Writer } from '../../src/format/binary.js'
import { REPO_ROOT, dmError, keyFromSeed, loadVectors, testKey } from './helpers.js'

ed.hashes.sha512 = sha512

const vectors = loadVectors()
const vkey = keyFromSeed(Buffer.from(vectors.key.seedHex, 'hex'))
const b = (h: string): Buffer => Buffer.from(h, 'hex')

test('vectors: the key is derived from the seed', () => {
  assert.equal(vectors.key.seedHex, '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20')
  assert.equal(Buffer.from(vkey.publicKey).toString('base64'), vectors.key.publicKeyBase64)
  assert.equal(hex(vkey.publicKey), vectors.key.publicKeyHex)
  assert.equal(vkey.privateKey.export({ format: 'pem', type: 'pkcs8' }), vectors.key.privateKeyPkcs8Pem)
  // An independent implementation derives the same public key from the seed.
  assert.equal(hex(ed.getPublicKey(b(vectors.key.seedHex))), vectors.key.publicKeyHex)
})

test('vectors: network id is SHA-256 of the tag and the id', () => {
  assert.equal(NETWORK_TAG.toString('latin1'), 'data-mesher/network/1\0')
  assert.equal(hex(networkIdFrom(vectors.network.id)), vectors.network.networkIdHex)
  assert.notEqual(hex(networkIdFrom(vectors.network.id + ' ')), vectors.network.networkIdHex)
})

test('vectors: there is a file, a tombstone and an expiring file', () => {
  assert.deepEqual(vectors.vectors.map(v => [v.kind, v.expiresAtMs !== 0]), [['file', false], ['tombstone', false], ['file', true]])
  const first = vectors.vectors[0]
  assert.equal(first.name, 'dns/cnames')
  assert.equal(first.contentUtf8, 'hello mesh\n')
  assert.equal(first.timestampMs, 1764000000000)
})

for (const vec of vectors.vectors) {
  test(`vector "${vec.description}": every derived value matches`, () => {
    const content = b(vec.contentHex)
    assert.equal(content.toString('utf8'), vec.contentUtf8)
    const header: VersionHeader = {
      kind: vec.kindByte as VersionKind,
      networkId: networkIdFrom(vectors.network.id),
      name: vec.name,
      timestampMs: vec.timestampMs,
      expiresAtMs: vec.expiresAtMs,
      size: content.length,
      sha256: sha256(content)
    }
    assert.equal(vec.size, content.length)
    assert.equal(hex(header.sha256), vec.sha256Hex)
    assert.equal(signedBytes(header).toString('hex'), vec.signedBytesHex)

    const v = newVersion({
      name: vec.name,
      networkId: header.networkId,
      privateKey: vkey.privateKey,
      signer: vkey.publicKey,
      content: vec.kind === 'file' ? content : undefined,
      timestampMs: vec.timestampMs,
      expiresAtMs: vec.expiresAtMs
    })
    assert.equal(v.kind, vec.kindByte)
    assert.equal(hex(v.signature), vec.signatureHex, 'Ed25519 is deterministic, so the signature must match')
    assert.equal(encodeEnvelope(v).toString('hex'), vec.envelopeHex)
    assert.equal(hex(versionId(v)), vec.versionIdHex)
    assert.ok(signatureIsValid(v))

    const decoded = decodeEnvelope(b(vec.envelopeHex))
    assert.deepEqual(decoded, v)
    assert.equal(hex(versionId(decoded)), vec.versionIdHex)
  })

  test(`vector "${vec.description}": field offsets are as specified`, () => {
    const s = b(vec.signedBytesHex)
    const nameLen = Buffer.byteLength(vec.name)
    assert.equal(s.length, 22 + 1 + 32 + 2 + nameLen + 8 + 8 + 8 + 32)
    assert.ok(s.subarray(0, 22).equals(VERSION_TAG))
    assert.equal(s[22], vec.kindByte)
    assert.equal(s.subarray(23, 55).toString('hex'), vectors.network.networkIdHex)
    assert.equal(s.readUInt16BE(55), nameLen)
    let o = 57
    assert.equal(s.subarray(o, o + nameLen).toString('utf8'), vec.name); o += nameLen
    assert.equal(Number(s.readBigUInt64BE(o)), vec.timestampMs); o += 8
    assert.equal(Number(s.readBigUInt64BE(o)), vec.expiresAtMs); o += 8
    assert.equal(Number(s.readBigUInt64BE(o)), vec.size); o += 8
    assert.equal(s.subarray(o, o + 32).toString('hex'), vec.sha256Hex)

    const e = b(vec.envelopeHex)
    assert.ok(e.subarray(0, s.length).equals(s))
    assert.equal(e.subarray(s.length, s.length + 32).toString('hex'), vectors.key.publicKeyHex)
    assert.equal(e.subarray(s.length + 32, s.length + 96).toString('hex'), vec.signatureHex)
    assert.equal(e.readUInt16BE(s.length + 96), 0)
    assert.equal(e.length, s.length + 98)
    assert.equal(hex(sha256(Buffer.concat([s, b(vectors.key.publicKeyHex)]))), vec.versionIdHex)
  })

  test(`vector "${vec.description}": the signature verifies with @noble/ed25519`, () => {
    assert.ok(ed.verify(b(vec.signatureHex), b(vec.signedBytesHex), b(vectors.key.publicKeyHex)))
    assert.ok(ed.verify(b(vec.signatureHex), b(vec.signedBytesHex), b(vectors.key.publicKeyHex), { zip215: false }))
    assert.equal(hex(ed.sign(b(vec.signedBytesHex), b(vectors.key.seedHex))), vec.signatureHex)
  })
}

test('cross-check: node:crypto signatures verify with noble and noble signatures verify with ours', () => {
  for (let i = 0; i < 20; i++) {
    const seed = randomBytes(32)
    const key = keyFromSeed(seed)
    const msg = randomBytes(i * 37)
    assert.equal(hex(ed.getPublicKey(seed)), hex(key.publicKey))

    const ours = sign(key.privateKey, msg)
    assert.ok(ed.verify(ours, msg, key.publicKey), 'noble rejects a node:crypto signature')
    const theirs = ed.sign(msg, seed)
    assert.ok(verify(key.publicKey, msg, theirs), 'node:crypto rejects a noble signature')
    assert.equal(hex(ours), hex(theirs))

    const bad = Uint8Array.from(ours)
    bad[i % 64] ^= 0x01
    assert.equal(verify(key.publicKey, msg, bad), false)
    assert.equal(ed.verify(bad, msg, key.publicKey), false)
  }
})

test('verify is false, never throwing, on malformed input', () => {
  const key = testKey(1)
  const msg = Buffer.from('m')
  const sig = sign(key.privateKey, msg)
  assert.ok(verify(key.publicKey, msg, sig))
  assert.equal(verify(key.publicKey.subarray(0, 31), msg, sig), false)
  assert.equal(verify(key.publicKey, msg, sig.subarray(0, 63)), false)
  assert.equal(verify(new Uint8Array(32), msg, sig), false)
  assert.equal(verify(new Uint8Array(32).fill(0xff), msg, sig), false)
  assert.equal(verify(testKey(2).publicKey, msg, sig), false)
  assert.equal(verify(key.publicKey, Buffer.from('n'), sig), false)
})

function sample (attachments = new Uint8Array(0)): SignedVersion {
  const key = testKey(3)
  const v = newVersion({ name: 'a/b', networkId: networkIdFrom('t'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('xyz'), timestampMs: 1_700_000_000_123, expiresAtMs: 1_800_000_000_000 })
  return { ...v, attachments }
}

test('envelope round-trips, attachments kept verbatim but outside the version id', () => {
  const plain = sample()
  const withAtt = sample(Uint8Array.from([1, 2, 3]))
  assert.deepEqual(decodeEnvelope(encodeEnvelope(withAtt)), withAtt)
  assert.equal(hex(versionId(plain)), hex(versionId(withAtt)))
  const max = sample(new Uint8Array(MAX_ATTACHMENT_BYTES).fill(7))
  assert.deepEqual(decodeEnvelope(encodeEnvelope(max)), max)
})

test('decoded envelopes do not alias the input buffer', () => {
  const buf = encodeEnvelope(sample())
  const v = decodeEnvelope(buf)
  buf.fill(0)
  assert.ok(signatureIsValid(v))
})

test('newVersion builds tombstones with size 0 and the empty hash', () => {
  const key = testKey(4)
  const t = newVersion({ name: 'x', networkId: networkIdFrom('t'), privateKey: key.privateKey, signer: key.publicKey, timestampMs: 5 })
  assert.equal(t.kind, VersionKind.Tombstone)
  assert.equal(t.size, 0)
  assert.equal(t.expiresAtMs, 0)
  assert.equal(hex(t.sha256), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  assert.equal(hex(EMPTY_SHA256), hex(t.sha256))
  assert.ok(signatureIsValid(t))
  // An empty file is a File, not a tombstone.
  const empty = newVersion({ name: 'x', networkId: networkIdFrom('t'), privateKey: key.privateKey, signer: key.publicKey, content: new Uint8Array(0), timestampMs: 5 })
  assert.equal(empty.kind, VersionKind.File)
  assert.notEqual(hex(versionId(empty)), hex(versionId(t)))
})

test('signVersion refuses an invalid name', () => {
  const key = testKey(5)
  assert.throws(() => newVersion({ name: '../x', networkId: networkIdFrom('t'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('a'), timestampMs: 1 }), dmError('ERR_NAME_INVALID'))
})

test('signedBytes refuses ill-sized fields and out-of-range numbers', () => {
  const h: VersionHeader = { kind: VersionKind.File, networkId: new Uint8Array(32), name: 'a', timestampMs: 1, expiresAtMs: 0, size: 0, sha256: EMPTY_SHA256 }
  assert.throws(() => signedBytes({ ...h, networkId: new Uint8Array(31) }), RangeError)
  assert.throws(() => signedBytes({ ...h, sha256: new Uint8Array(33) }), RangeError)
  assert.throws(() => signedBytes({ ...h, timestampMs: -1 }), RangeError)
  assert.throws(() => signedBytes({ ...h, timestampMs: 1.5 }), RangeError)
  assert.throws(() => signedBytes({ ...h, timestampMs: Number.MAX_SAFE_INTEGER + 1 }), RangeError)
  assert.equal(signedBytes({ ...h, timestampMs: Number.MAX_SAFE_INTEGER }).length, 22 + 1 + 32 + 2 + 1 + 24 + 32)
})

test('signature covers every signed field', () => {
  const v = sample()
  const mutations: Array<Partial<SignedVersion>> = [
    { kind: VersionKind.Tombstone },
    { networkId: networkIdFrom('other') },
    { name: 'a/c' },
    { timestampMs: v.timestampMs + 1 },
    { expiresAtMs: 0 },
    { size: v.size + 1 },
    { sha256: sha256(Buffer.from('xyZ')) },
    { signer: testKey(9).publicKey }
  ]
  assert.ok(signatureIsValid(v))
  for (const m of mutations) assert.equal(signatureIsValid({ ...v, ...m }), false, `mutation ${Object.keys(m)[0]} still verifies`)
})

test('decodeEnvelope: every truncation is ERR_DECODE', () => {
  const buf = encodeEnvelope(sample(Uint8Array.from([9, 9])))
  for (let n = 0; n < buf.length; n++) {
    assert.throws(() => decodeEnvelope(buf.subarray(0, n)), dmError('ERR_DECODE'), `prefix of ${n} bytes`)
  }
})

test('decodeEnvelope: trailing bytes, bad tag, bad kind, huge numbers, long attachments', () => {
  const good = encodeEnvelope(sample())
  assert.throws(() => decodeEnvelope(Buffer.concat([good, Buffer.of(0)])), dmError('ERR_DECODE', /trailing/))

  const badTag = Buffer.from(good); badTag[20] ^= 1
  assert.throws(() => decodeEnvelope(badTag), dmError('ERR_DECODE', /format tag/))

  for (const kind of [0, 3, 255]) {
    const badKind = Buffer.from(good); badKind[22] = kind
    assert.throws(() => decodeEnvelope(badKind), dmError('ERR_DECODE', /kind/))
  }

  // timestamp field starts at 57 + name length ("a/b" = 3); top 11 bits of a u64 must be 0
  const huge = Buffer.from(good); huge.writeUInt32BE(0x00200000, 60)
  assert.throws(() => decodeEnvelope(huge), dmError('ERR_DECODE', /2\^53/))
  const maxSafe = Buffer.from(good); maxSafe.writeUInt32BE(0x001fffff, 60); maxSafe.writeUInt32BE(0xffffffff, 64)
  assert.equal(decodeEnvelope(maxSafe).timestampMs, Number.MAX_SAFE_INTEGER)

  const longAtt = new Writer().bytes(good.subarray(0, good.length - 2)).u16(MAX_ATTACHMENT_BYTES + 1).bytes(new Uint8Array(MAX_ATTACHMENT_BYTES + 1)).finish()
  assert.throws(() => decodeEnvelope(longAtt), dmError('ERR_DECODE', /at most 4096/))
})

test('decodeEnvelope: names are checked (syntax and UTF-8)', () => {
  const good = encodeEnvelope(sample())
  const dotdot = Buffer.from(good); dotdot.write('../', 57, 'latin1')
  assert.throws(() => decodeEnvelope(dotdot), dmError('ERR_NAME_INVALID'))
  const notUtf8 = Buffer.from(good); notUtf8[57] = 0xff
  assert.throws(() => decodeEnvelope(notUtf8), dmError('ERR_DECODE', /UTF-8/))
  const tooLong = Buffer.from(good); tooLong.writeUInt16BE(256, 55)
  assert.throws(() => decodeEnvelope(tooLong), dmError('ERR_DECODE'))
})

test('compareVersions: later timestamp wins, then the larger id; antisymmetric', () => {
  const lo = new Uint8Array(32).fill(1)
  const hi = new Uint8Array(32).fill(1); hi[31] = 2
  assert.ok(compareVersions({ timestampMs: 2, id: lo }, { timestampMs: 1, id: hi }) > 0)
  assert.ok(compareVersions({ timestampMs: 1, id: hi }, { timestampMs: 2, id: lo }) < 0)
  assert.ok(compareVersions({ timestampMs: 1, id: hi }, { timestampMs: 1, id: lo }) > 0)
  assert.ok(compareVersions({ timestampMs: 1, id: lo }, { timestampMs: 1, id: hi }) < 0)
  assert.equal(compareVersions({ timestampMs: 1, id: lo }, { timestampMs: 1, id: Uint8Array.from(lo) }), 0)
  // Bytewise and unsigned: 0x80 > 0x7f.
  const a = new Uint8Array(32); a[0] = 0x80
  const c = new Uint8Array(32).fill(0xff); c[0] = 0x7f
  assert.ok(compareVersions({ timestampMs: 1, id: a }, { timestampMs: 1, id: c }) > 0)
})

test('Reader and Writer: big-endian fields and bounds', () => {
  const buf = new Writer().u8(0xab).u16(0x1234).u32(0xdeadbeef).u64(2 ** 40 + 5).bytes16(Buffer.from('hi')).bytes32(Buffer.from('yo')).string16('é').finish()
  assert.equal(buf.toString('hex'), 'ab' + '1234' + 'deadbeef' + '0000010000000005' + '00026869' + '00000002796f' + '0002c3a9')
  const r = new Reader(buf)
  assert.equal(r.u8(), 0xab)
  assert.equal(r.u16(), 0x1234)
  assert.equal(r.u32(), 0xdeadbeef)
  assert.equal(r.u64(), 2 ** 40 + 5)
  assert.equal(Buffer.from(r.bytes16(2)).toString(), 'hi')
  assert.equal(Buffer.from(r.bytes32(2)).toString(), 'yo')
  assert.equal(r.string16(2), 'é')
  assert.doesNotThrow(() => r.end())
  assert.throws(() => r.u8(), dmError('ERR_DECODE', /truncated/))
  assert.throws(() => new Reader(Buffer.from('0003616263', 'hex')).bytes16(2), dmError('ERR_DECODE'))
  assert.throws(() => new Reader(Buffer.from('0005', 'hex')).count16(4), dmError('ERR_DECODE'))
  assert.throws(() => new Writer().u16(0x10000), RangeError)
  assert.throws(() => new Writer().u32(-1), RangeError)
})

test('docs/PROTOCOL.md reproduces the vector values', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'PROTOCOL.md'), 'utf8')
  // Hex blocks are wrapped at 64 characters; compare with whitespace removed.
  const flat = doc.replace(/\s+/g, '')
  for (const value of [vectors.key.seedHex, vectors.key.publicKeyBase64, vectors.key.publicKeyHex, vectors.network.networkIdHex]) {
    assert.ok(flat.includes(value), `${value} is missing from docs/PROTOCOL.md`)
  }
  assert.ok(doc.includes(vectors.key.privateKeyPkcs8Pem.trim()))
  for (const v of vectors.vectors) {
    for (const value of [v.signedBytesHex, v.signatureHex, v.envelopeHex, v.versionIdHex, v.sha256Hex]) {
      assert.ok(flat.includes(value), `${v.description}: ${value.slice(0, 16)}… is missing from docs/PROTOCOL.md`)
    }
  }
})

const missingTools = ['openssl', 'jq', 'xxd'].filter(t => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0)
test('the OpenSSL recipe in docs/PROTOCOL.md works', { skip: missingTools.length > 0 ? `needs ${missingTools.join(', ')} on PATH` : false }, () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'PROTOCOL.md'), 'utf8')
  const m = /### 9\.4[^\n]*\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(doc)
  assert.ok(m !== null, 'no shell recipe under 9.4')
  const r = spawnSync('sh', ['-e', '-c', m[1]], { cwd: REPO_ROOT, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const first = vectors.vectors[0]
  assert.match(r.stdout, /^Signature Verified Successfully$/m)
  assert.ok(r.stdout.includes(first.signatureHex))
  assert.ok(r.stdout.includes(first.versionIdHex))
  assert.ok(r.stdout.includes(vectors.network.networkIdHex))
  assert.match(r.stdout, /Signature Verification Failure/)
  assert.match(r.stdout, /refused, as it should be/)
})
