import { test } from 'node:test'
import assert from 'node:assert/strict'
import { versionInfo, versionState } from '../../src/api/version-info.js'
import { networkIdFrom, newVersion, versionId } from '../../src/format/version.js'
import type { HeldEntry } from '../../src/store/store.js'
import { testKey } from './helpers.js'

const key = testKey(51)
const NOW = 1_800_000_000_000

function entry (opts: { tombstone?: boolean, expiresAtMs?: number, present?: boolean }): HeldEntry {
  const v = newVersion({ name: 'a', networkId: networkIdFrom('n'), privateKey: key.privateKey, signer: key.publicKey, content: opts.tombstone === true ? undefined : Buffer.from('x'), timestampMs: NOW - 1000, expiresAtMs: opts.expiresAtMs ?? 0 })
  return { name: 'a', version: v, envelope: Buffer.alloc(0), present: opts.present ?? true, id: versionId(v), timestampMs: v.timestampMs } as HeldEntry
}

test('versionState: tombstoned, then unlisted, then expired, then missing, else present', () => {
  const cases: Array<[Parameters<typeof entry>[0], boolean, string, boolean]> = [
    [{}, true, 'present', true],
    [{ present: false }, true, 'missing', false],
    [{ expiresAtMs: NOW - 1 }, true, 'expired', false],
    [{ expiresAtMs: NOW }, true, 'expired', false],
    [{ expiresAtMs: NOW + 1 }, true, 'present', true],
    [{ expiresAtMs: NOW - 1, present: false }, true, 'expired', false],
    [{}, false, 'unlisted', true],
    [{ present: false }, false, 'unlisted', false],
    [{ tombstone: true }, true, 'tombstoned', false],
    [{ tombstone: true }, false, 'tombstoned', false]
  ]
  for (const [opts, listed, state, present] of cases) {
    const e = entry(opts)
    assert.equal(versionState(e, NOW, listed), state, JSON.stringify({ opts, listed }))
    const info = versionInfo(e, NOW, listed)
    assert.equal(info.state, state)
    assert.equal(info.present, present, `present for ${JSON.stringify({ opts, listed })}`)
  }
})
