/*
 * Writes test/vectors/version-v1.json: signed-version test vectors for
 * docs/PROTOCOL.md. Run with:
 *
 *   node --import tsx test/vectors/generate.ts          # rewrite the file
 *   node --import tsx test/vectors/generate.ts --check  # exit 1 if it differs
 *
 * The bytes are assembled here by hand, field by field as the spec describes,
 * and only then compared with what src/format/version.ts produces, so the
 * vectors are an independent statement of the format rather than a copy of
 * the implementation's output. Ed25519 is deterministic, so the output is
 * identical on every run.
 */
import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  encodeEnvelope, networkIdFrom, signedBytes, signVersion, versionId, VersionKind, type VersionHeader
} from '../../src/format/version.js'
import { rawPublicKey } from '../../src/crypto/keys.js'

const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'version-v1.json')

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
export const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export function keyFromSeed (seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError('seed must be 32 bytes')
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

const SEED = Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1)) // 0x01..0x20
const NETWORK = 'example-net'

interface VectorInput {
  description: string
  kind: 'file' | 'tombstone'
  name: string
  /** undefined for a tombstone */
  content?: string
  timestampMs: number
  expiresAtMs: number
}

const INPUTS: VectorInput[] = [
  { description: 'a file that never expires', kind: 'file', name: 'dns/cnames', content: 'hello mesh\n', timestampMs: 1764000000000, expiresAtMs: 0 },
  { description: 'a tombstone (deletion) of the same name, one minute later', kind: 'tombstone', name: 'dns/cnames', timestampMs: 1764000060000, expiresAtMs: 0 },
  { description: 'a file that expires one day after it was signed', kind: 'file', name: 'dns/cnames', content: 'hello mesh\n', timestampMs: 1764000000000, expiresAtMs: 1764086400000 }
]

function u16be (n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
function u64be (n: number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }
function sha256 (b: Uint8Array): Buffer { return createHash('sha256').update(b).digest() }

function build (): object {
  const privateKey = keyFromSeed(SEED)
  const publicKey = rawPublicKey(createPublicKey(privateKey))
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const networkId = sha256(Buffer.concat([Buffer.from('data-mesher/network/1\0', 'ascii'), Buffer.from(NETWORK, 'utf8')]))
  if (!networkId.equals(networkIdFrom(NETWORK))) throw new Error('networkIdFrom disagrees with the spec')

  const vectors = INPUTS.map(input => {
    const content = input.content === undefined ? Buffer.alloc(0) : Buffer.from(input.content, 'utf8')
    const kind = input.kind === 'file' ? 1 : 2
    const name = Buffer.from(input.name, 'utf8')
    const hash = sha256(content)
    const signed = Buffer.concat([
      Buffer.from('data-mesher/version/1\0', 'ascii'), // 22 bytes
      Buffer.of(kind),
      networkId,
      u16be(name.length), name,
      u64be(input.timestampMs),
      u64be(input.expiresAtMs),
      u64be(content.length),
      hash
    ])
    const signature = sign(null, signed, privateKey)
    const envelope = Buffer.concat([signed, publicKey, signature, u16be(0)])
    const id = sha256(Buffer.concat([signed, publicKey]))

    // The implementation must agree byte for byte.
    const header: VersionHeader = {
      kind: kind as VersionKind, networkId, name: input.name, timestampMs: input.timestampMs,
      expiresAtMs: input.expiresAtMs, size: content.length, sha256: hash
    }
    const v = signVersion(header, privateKey, publicKey)
    if (!signedBytes(header).equals(signed)) throw new Error(`${input.description}: signedBytes disagrees with the spec`)
    if (!Buffer.from(v.signature).equals(signature)) throw new Error(`${input.description}: signature differs`)
    if (!encodeEnvelope(v).equals(envelope)) throw new Error(`${input.description}: encodeEnvelope disagrees with the spec`)
    if (!Buffer.from(versionId(v)).equals(id)) throw new Error(`${input.description}: versionId disagrees with the spec`)

    return {
      description: input.description,
      kind: input.kind,
      kindByte: kind,
      name: input.name,
      contentUtf8: input.content ?? '',
      contentHex: content.toString('hex'),
      timestampMs: input.timestampMs,
      expiresAtMs: input.expiresAtMs,
      size: content.length,
      sha256Hex: hash.toString('hex'),
      signedBytesHex: signed.toString('hex'),
      signatureHex: signature.toString('hex'),
      envelopeHex: envelope.toString('hex'),
      versionIdHex: id.toString('hex')
    }
  })

  return {
    format: 'data-mesher/version/1',
    comment: 'Generated by test/vectors/generate.ts; specified in docs/PROTOCOL.md. Do not edit by hand.',
    key: {
      seedHex: SEED.toString('hex'),
      publicKeyBase64: Buffer.from(publicKey).toString('base64'),
      publicKeyHex: Buffer.from(publicKey).toString('hex'),
      privateKeyPkcs8Pem: pem
    },
    network: {
      id: NETWORK,
      networkIdHex: networkId.toString('hex')
    },
    vectors
  }
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (isMain) {
  const text = JSON.stringify(build(), null, 2) + '\n'
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : ''
    if (current !== text) {
      process.stderr.write(`${OUT} is out of date; run node --import tsx test/vectors/generate.ts\n`)
      process.exit(1)
    }
    process.stdout.write(`${OUT} is up to date\n`)
  } else {
    fs.writeFileSync(OUT, text)
    process.stdout.write(`wrote ${OUT}\n`)
  }
}
