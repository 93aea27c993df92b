// Ed25519 verification throughput of the built verifier (dist/crypto/ed25519.js)
// on valid signatures, against bare node:crypto with a cached KeyObject and
// @noble/ed25519 in strict mode, measured in the same run. Build first:
//   npm run build && node bench/verify.mjs [--n 20000] [--runs 5]
import { generateKeyPairSync, sign, verify as nodeVerify } from 'node:crypto'
import { parseArgs } from 'node:util'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { verify } from '../dist/crypto/ed25519.js'

ed.hashes.sha512 = sha512
const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' }, runs: { type: 'string', default: '5' } } })
const N = Number(values.n)
const RUNS = Number(values.runs)

// Many messages by one signer: the daemon's case (few keys, many versions).
const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url'))
const keyObject = publicKey
const msgs = Array.from({ length: 1000 }, (_, i) => Buffer.from(`version ${i} `.repeat(12)))
const sigs = msgs.map(m => new Uint8Array(sign(null, m, privateKey)))

function rate (label, fn, n) {
  const out = []
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) if (!fn(msgs[i % msgs.length], sigs[i % sigs.length])) throw new Error(`${label} refused a valid signature`)
    out.push(n / (Number(process.hrtime.bigint() - t0) / 1e9))
  }
  out.sort((a, b) => a - b)
  return { label, median: out[Math.floor(RUNS / 2)], max: out[RUNS - 1] }
}

const rows = [
  rate('dm verify (strict checks + node:crypto)', (m, s) => verify(raw, m, s), N),
  rate('bare node:crypto, cached KeyObject', (m, s) => nodeVerify(null, m, keyObject, s), N),
  rate('@noble/ed25519 strict (zip215: false)', (m, s) => ed.verify(s, m, raw, { zip215: false }), Math.max(200, Math.floor(N / 20)))
]
console.log(`node ${process.version}, ${RUNS} runs, verifications per second (median / max):`)
for (const r of rows) console.log(`  ${r.label.padEnd(42)} ${Math.round(r.median).toString().padStart(7)} / ${Math.round(r.max)}`)
console.log(`  dm verify / bare node:crypto: ${(rows[0].median / rows[1].median).toFixed(3)}`)
