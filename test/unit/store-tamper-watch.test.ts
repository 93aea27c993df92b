import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { openStore, type RepairReport } from '../../src/store/store.js'
import { createTamperWatch } from '../../src/store/tamper-watch.js'
import { networkIdFrom, newVersion, type SignedVersion } from '../../src/format/version.js'
import { waitFor } from '../helpers/wait.js'
import { tempDir, testKey } from './helpers.js'

const NET = networkIdFrom('tamper-net')
const key = testKey(41)
const version = (name: string, content: string, timestampMs: number): SignedVersion =>
  newVersion({ name, networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from(content), timestampMs })

test('local edits, replacements, deletions and strays in files/ are noticed within seconds and repaired or moved aside', async () => {
  const { dir, cleanup } = tempDir('dm-tamper-')
  const store = await openStore(dir, { problem: () => {} })
  const events: RepairReport[] = []
  const watch = createTamperWatch({ store, onEvent: r => events.push(r), debounceMs: 50 })
  const file = (rel: string): string => path.join(dir, 'files', rel)
  const quarantine = (): string[] => fs.readdirSync(path.join(dir, 'quarantine')).map(f => fs.readFileSync(path.join(dir, 'quarantine', f), 'utf8')).sort()
  const eventFor = async (name: string, action: RepairReport['action']): Promise<RepairReport> =>
    await waitFor(`a ${action} event for ${name}`, () => events.find(e => e.name === name && e.action === action), 5000)
  try {
    await store.commit(version('dns/cnames', 'zone v1', 1000), Buffer.from('zone v1'))
    await store.commit(version('conf', 'signed conf', 1000), Buffer.from('signed conf'))
    watch.start()

    // Deleted: restored from the local copy, the entry stays present.
    fs.rmSync(file('dns/cnames'))
    await eventFor('dns/cnames', 'restored')
    assert.equal(fs.readFileSync(file('dns/cnames'), 'utf8'), 'zone v1')
    assert.equal(store.get('dns/cnames')?.present, true)

    // Replaced by rename (as editors save): restored atomically, the impostor kept as evidence.
    fs.writeFileSync(path.join(dir, 'impostor'), 'evil conf')
    fs.renameSync(path.join(dir, 'impostor'), file('conf'))
    await eventFor('conf', 'restored')
    assert.equal(fs.readFileSync(file('conf'), 'utf8'), 'signed conf')
    assert.deepEqual(quarantine(), ['evil conf'])

    // Edited in place: the local copy (same inode) is spoilt too, so the content is moved aside,
    // nothing is left under the name, and the entry is not present (anti-entropy fetches it again).
    events.length = 0
    fs.appendFileSync(file('conf'), ' and more')
    await eventFor('conf', 'moved-aside')
    assert.equal(fs.existsSync(file('conf')), false)
    assert.equal(store.get('conf')?.present, false)
    assert.deepEqual(quarantine(), ['evil conf', 'signed conf and more'])

    // A file where no version is held.
    fs.writeFileSync(file('stray'), 'unsigned')
    await eventFor('stray', 'moved-aside')
    assert.equal(fs.existsSync(file('stray')), false)

    // A directory removed whole takes its files with it: each held name below it is restored.
    events.length = 0
    fs.rmSync(file('dns'), { recursive: true })
    await eventFor('dns/cnames', 'restored')
    assert.equal(fs.readFileSync(file('dns/cnames'), 'utf8'), 'zone v1')

    // Only real changes are reported: the watcher's own repairs and normal commits are not.
    // A marker stray written after the commit: once its event is in, the commit's would be too.
    events.length = 0
    await store.commit(version('dns/cnames', 'zone v2', 2000), Buffer.from('zone v2'))
    fs.writeFileSync(file('marker'), 'x')
    await eventFor('marker', 'moved-aside')
    assert.deepEqual(events.map(e => e.name), ['marker'])
  } finally {
    await watch.stop()
    await store.close()
    cleanup()
  }
})
