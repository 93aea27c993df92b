import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { build } from '../vectors/generate-reconcile.js'
import { REPO_ROOT } from './helpers.js'

const vectors = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test/vectors/reconcile-v3.json'), 'utf8'))

test('reconcile-v3.json: fingerprints from the spec steps match the implementation, and the transcript replays', () => {
  // build() recomputes every digest, fingerprint and item hash from the spec's steps, throws if
  // src/sync/fingerprint.ts disagrees, and replays the exchange with the fixed salt.
  assert.deepEqual(build(), vectors)
  assert.deepEqual(vectors.initiatorWants, ['dns/zone', 'mail/aliases'])
  assert.deepEqual(vectors.responderWants, ['hosts/h2'])
})

test('docs/PROTOCOL.md quotes the reconcile vectors', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/PROTOCOL.md'), 'utf8').replace(/\s+/g, '')
  for (const hex of [vectors.digestHex, ...vectors.fingerprints.map((f: { hex: string }) => f.hex), ...vectors.itemHashesHex, ...vectors.transcript.map((t: { frameHex: string }) => t.frameHex)]) {
    assert.ok(doc.includes(hex), `PROTOCOL.md lacks ${hex.slice(0, 40)}…`)
  }
})
