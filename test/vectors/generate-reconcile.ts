/*
 * Writes test/vectors/reconcile-v3.json: fingerprint vectors and a short
 * reconciliation transcript for docs/PROTOCOL.md section 7.4. Run with:
 *
 *   node --import tsx test/vectors/generate-reconcile.ts          # rewrite the file
 *   node --import tsx test/vectors/generate-reconcile.ts --check  # exit 1 if it differs
 *
 * Digests, fingerprints and item hashes are computed here from the spec's
 * steps (tag, salt, serialised entries) and compared with src/sync/fingerprint.ts;
 * the transcript is the implementation's output with a fixed salt.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IndexEntry } from '../../src/protocol/messages.js'
import { createReconcileIndex } from '../../src/sync/fingerprint.js'
import { createReconciler, type Reconciler } from '../../src/sync/reconcile.js'

const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'reconcile-v3.json')
const sha256 = (...parts: Uint8Array[]): Buffer => { const h = createHash('sha256'); for (const p of parts) h.update(p); return h.digest() }
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export const SALT = Buffer.from(Array.from({ length: 16 }, (_, i) => i)) // 0x00..0x0f
const entry = (name: string, timestampMs: number, v = ''): IndexEntry => ({ name, timestampMs, id: sha256(Buffer.from(`version of ${name}${v}`)) })

/**
 * The initiator's index, then the responder's: dns/zone is newer there, and it also holds mail/aliases;
 * hosts/h2 is newer on the initiator, though older than the responder's newest entry.
 */
export const INITIATOR = [entry('a', 1764000000000), entry('dns/cnames', 1764000000001), entry('dns/zone', 1764000000002), entry('hosts/h1', 1764000000003), entry('hosts/h2', 1764000030000, ' (2)')]
export const RESPONDER = [INITIATOR[0], INITIATOR[1], entry('dns/zone', 1764000060000, ' (2)'), INITIATOR[3], entry('hosts/h2', 1764000000005), entry('mail/aliases', 1764000000004)]

/** u8 name length · name · version id: the serialisation every fingerprint hashes. */
const serialise = (es: IndexEntry[]): Buffer => Buffer.concat(es.map(e => Buffer.concat([Buffer.of(Buffer.byteLength(e.name)), Buffer.from(e.name), e.id])))
const TAG = (what: string): Buffer => Buffer.from(`data-mesher/reconcile/1/${what}\0`, 'ascii')

export function build (): object {
  const index = createReconcileIndex(INITIATOR)
  const digest = sha256(TAG('digest'), serialise(INITIATOR))
  const all = INITIATOR.length
  const fpAll = sha256(TAG('fingerprint'), SALT, serialise(INITIATOR)).subarray(0, 16)
  const fpMid = sha256(TAG('fingerprint'), SALT, serialise(INITIATOR.slice(1, 3))).subarray(0, 16)
  const fpEmpty = sha256(TAG('fingerprint'), SALT).subarray(0, 16)
  const items = INITIATOR.map(e => sha256(TAG('item'), SALT, serialise([e])).subarray(0, 3))
  const same = (a: Uint8Array, b: Uint8Array, what: string): void => { if (!Buffer.from(a).equals(b)) throw new Error(`implementation disagrees with the spec on ${what}`) }
  same(index.digest(0, all), digest, 'the digest')
  same(index.fingerprint(SALT, 0, all), fpAll, 'the whole fingerprint')
  same(index.fingerprint(SALT, 1, 3), fpMid, 'a range fingerprint')
  same(index.fingerprint(SALT, 2, 2), fpEmpty, 'the empty fingerprint')
  items.forEach((h, i) => same(index.itemHash(SALT, i), h, `item hash ${i}`))

  const A = createReconciler({ index, role: 'initiator', salt: SALT })
  const B = createReconciler({ index: createReconcileIndex(RESPONDER), role: 'responder' })
  const transcript: Array<{ from: string, frameHex: string }> = [{ from: 'initiator', frameHex: hex(A.initiate()) }]
  for (let to: Reconciler = B; ; to = to === A ? B : A) {
    const step = to.receive(Buffer.from(transcript[transcript.length - 1].frameHex, 'hex'))
    if (step.reply !== undefined) transcript.push({ from: to === A ? 'initiator' : 'responder', frameHex: hex(step.reply) })
    if (step.done) break
  }
  const list = (es: IndexEntry[]): object[] => es.map(e => ({ name: e.name, timestampMs: e.timestampMs, idHex: hex(e.id) }))
  return {
    description: 'Range-based reconciliation (docs/PROTOCOL.md 7.4): fingerprints over the initiator index, and one exchange',
    saltHex: hex(SALT),
    initiator: list(INITIATOR),
    responder: list(RESPONDER),
    serialisedInitiatorHex: hex(serialise(INITIATOR)),
    digestHex: hex(digest),
    fingerprints: [
      { from: 0, to: all, hex: hex(fpAll) },
      { from: 1, to: 3, hex: hex(fpMid) },
      { from: 2, to: 2, hex: hex(fpEmpty) }
    ],
    itemHashesHex: items.map(hex),
    transcript,
    initiatorWants: A.wants().map(e => e.name),
    responderWants: B.wants().map(e => e.name)
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const text = JSON.stringify(build(), null, 2) + '\n'
  if (process.argv.includes('--check')) {
    if (fs.readFileSync(OUT, 'utf8') !== text) { console.error(`${OUT} is out of date`); process.exit(1) }
  } else {
    fs.writeFileSync(OUT, text)
  }
}
