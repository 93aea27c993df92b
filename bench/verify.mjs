// Ed25519 verification throughput of the built verifier (dist/crypto/ed25519.js)
// on valid signatures, against the verifier before the strict checks (a cached
// KeyObject looked up by base64url, then node:crypto), bare node:crypto and
// @noble/ed25519 in strict mode. The runs are interleaved, so other load on
// the machine hits every row alike, and rates are per second of this
// process's CPU time (not wall time), which a busy machine disturbs less;
// compare the ratios. Build first:
//   npm run build && node bench/verify.mjs [--n 20000] [--runs 7]
import { createPublicKey, generateKeyPairSync, sign, verify as nodeVerify } from 'node:crypto'
import { parseArgs } from 'node:util'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { verify } from '../dist/crypto/ed25519.js'

ed.hashes.sha512 = sha512
const LOAD = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim()
const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' }, runs: { type: 'string', default: '7' } } })
const N = Number(values.n)
const RUNS = Number(values.runs)

// Many messages by one signer: the daemon's case (few keys, many versions).
const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url'))
const keyObject = publicKey
const msgs = Array.from({ length: 1000 }, (_, i) => Buffer.from(`version ${i} `.repeat(12)))
const sigs = msgs.map(m => new Uint8Array(sign(null, m, privateKey)))

// The verifier as it was before the strict checks (commit 1fa0919).
const previousCache = new Map()
function previousVerify (pub, msg, sig) {
  const id = Buffer.from(pub).toString('base64url')
  let key = previousCache.get(id)
  if (key === undefined) previousCache.set(id, key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id }, format: 'jwk' }))
  return nodeVerify(null, msg, key, sig)
}

const rows = [
  { label: 'dm verify (strict checks + node:crypto)', fn: (m, s) => verify(raw, m, s), n: N },
  { label: 'previous dm verify (no checks)', fn: (m, s) => previousVerify(raw, m, s), n: N },
  { label: 'bare node:crypto, cached KeyObject', fn: (m, s) => nodeVerify(null, m, keyObject, s), n: N },
  { label: '@noble/ed25519 strict (zip215: false)', fn: (m, s) => ed.verify(s, m, raw, { zip215: false }), n: Math.max(200, Math.floor(N / 20)) }
]
for (const row of rows) row.rates = []
for (let r = 0; r < RUNS; r++) {
  for (const row of rows) {
    const c0 = process.cpuUsage()
    for (let i = 0; i < row.n; i++) if (!row.fn(msgs[i % msgs.length], sigs[i % sigs.length])) throw new Error(`${row.label} refused a valid signature`)
    const c = process.cpuUsage(c0)
    row.rates.push(row.n / ((c.user + c.system) / 1e6))
  }
}
for (const row of rows) {
  row.rates.sort((a, b) => a - b)
  row.median = row.rates[Math.floor(RUNS / 2)]
  row.max = row.rates[RUNS - 1]
}
console.log(`node ${process.version}, ${RUNS} interleaved runs, verifications per CPU second (median / max):`)
for (const r of rows) console.log(`  ${r.label.padEnd(42)} ${Math.round(r.median).toString().padStart(7)} / ${Math.round(r.max)}`)
console.log(`  dm verify / previous: ${(rows[0].median / rows[1].median).toFixed(3)} (max ${(rows[0].max / rows[1].max).toFixed(3)}); / bare node:crypto: ${(rows[0].median / rows[2].median).toFixed(3)}`)
console.log(`  load average before: ${LOAD}`)
