import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { openStore } from '../../src/store/store.js'
import { inspectStateDir } from '../../src/store/state-dir.js'
import { encodeEnvelope, networkIdFrom, newVersion, type SignedVersion } from '../../src/format/version.js'
import { dmError, tempDir, testKey } from './helpers.js'

const NET = networkIdFrom('state-dir-net')
const key = testKey(51)
const version = (name: string, content: string | undefined, timestampMs: number): SignedVersion =>
  newVersion({ name, networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: content === undefined ? undefined : Buffer.from(content), timestampMs })

/** A private root holding `state/` and `outside/` (with a file the daemon must never touch). */
async function withRoot (fn: (ctx: { state: string, outside: string, problems: string[] }) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('dm-statedir-')
  const state = path.join(dir, 'state')
  const outside = path.join(dir, 'outside')
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(outside, 'x'), 'precious')
  try {
    await fn({ state, outside, problems: [] })
  } finally {
    cleanup()
  }
}
const untouched = (outside: string): void => {
  assert.deepEqual(fs.readdirSync(outside), ['x'])
  assert.equal(fs.readFileSync(path.join(outside, 'x'), 'utf8'), 'precious')
}

test('a state_dir, files/, versions/ or staging/ that is a symlink is refused at open (ERR_STATE_DIR_UNSAFE)', async () => {
  await withRoot(async ({ state, outside }) => {
    fs.symlinkSync(outside, state)
    await assert.rejects(openStore(state), dmError('ERR_STATE_DIR_UNSAFE'))
    untouched(outside)
  })
  for (const sub of ['files', 'versions', 'staging']) {
    await withRoot(async ({ state, outside }) => {
      fs.mkdirSync(state, { mode: 0o750 })
      fs.symlinkSync(outside, path.join(state, sub))
      await assert.rejects(openStore(state), dmError('ERR_STATE_DIR_UNSAFE'), sub)
      untouched(outside)
      assert.ok((await inspectStateDir(state)).some(f => f.fatal && f.code === 'ERR_STATE_DIR_UNSAFE' && f.path === path.join(state, sub)))
    })
  }
})

test('a state directory writable by others, or by its group, is refused at open and named by inspectStateDir', async () => {
  await withRoot(async ({ state }) => {
    fs.mkdirSync(state)
    fs.chmodSync(state, 0o777)
    await assert.rejects(openStore(state), dmError('ERR_STATE_DIR_UNSAFE'))
    assert.deepEqual((await inspectStateDir(state)).filter(f => f.fatal).map(f => f.path), [state])
    fs.chmodSync(state, 0o750)
    await (await openStore(state)).close()
    fs.chmodSync(path.join(state, 'versions'), 0o770)
    await assert.rejects(openStore(state), dmError('ERR_STATE_DIR_UNSAFE'))
    assert.deepEqual((await inspectStateDir(state)).filter(f => f.fatal).map(f => f.path), [path.join(state, 'versions')])
    fs.chmodSync(path.join(state, 'versions'), 0o750)
    assert.deepEqual(await inspectStateDir(state), [])
    // A warning, not a refusal: the node's private identity readable by others.
    fs.writeFileSync(path.join(state, 'identity.key'), 'k', { mode: 0o644 })
    fs.chmodSync(path.join(state, 'identity.key'), 0o644)
    assert.deepEqual((await inspectStateDir(state)).map(f => [f.fatal, f.path]), [[false, path.join(state, 'identity.key')]])
  })
})

test('staging/ on another filesystem than files/ is refused at open (ERR_STATE_DIR_CROSS_DEVICE)', async t => {
  await withRoot(async ({ state }) => {
    await (await openStore(state)).close()
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', path.join(state, 'staging')], { stdio: 'ignore' })
    } catch {
      t.skip('needs root to mount a tmpfs')
      return
    }
    try {
      await assert.rejects(openStore(state), dmError('ERR_STATE_DIR_CROSS_DEVICE'))
      assert.ok((await inspectStateDir(state)).some(f => f.fatal && f.code === 'ERR_STATE_DIR_CROSS_DEVICE'))
    } finally {
      execFileSync('umount', [path.join(state, 'staging')])
    }
  })
})

test('a symlink planted in files/ never redirects a write, a delete or a read outside state_dir', async () => {
  await withRoot(async ({ state, outside, problems }) => {
    const store = await openStore(state, { problem: m => problems.push(m) })
    const files = path.join(state, 'files')
    try {
      // files/d -> outside, planted while the daemon runs: writing d/x is refused, nothing is written there.
      fs.symlinkSync(outside, path.join(files, 'd'))
      await assert.rejects(store.commit(version('d/x', 'evil', 1000), Buffer.from('evil')), dmError('ERR_STATE_DIR_UNSAFE'))
      untouched(outside)
      assert.equal(store.get('d/x'), undefined)

      // d is a real directory holding d/x; then swapped for the link: a tombstone does not delete outside/x.
      fs.unlinkSync(path.join(files, 'd'))
      assert.equal((await store.commit(version('d/x', 'mine', 2000), Buffer.from('mine'))).committed, true)
      fs.renameSync(path.join(files, 'd'), path.join(state, 'd.real'))
      fs.symlinkSync(outside, path.join(files, 'd'))
      await assert.rejects(store.commit(version('d/x', undefined, 3000), new Uint8Array(0)), dmError('ERR_STATE_DIR_UNSAFE'))
      untouched(outside)
      // ...and reading d/x does not read (and serve to peers) outside/x.
      assert.equal(await store.readContent('d/x'), undefined)

      // A link as the final component is replaced, not written through.
      fs.symlinkSync(path.join(outside, 'x'), path.join(files, 'q'))
      assert.equal((await store.commit(version('q', 'q content', 1000), Buffer.from('q content'))).committed, true)
      assert.equal(fs.lstatSync(path.join(files, 'q')).isFile(), true)
      untouched(outside)
    } finally {
      await store.close()
    }
    // Pre-planted before start: moved aside at open, so the next write makes a real directory.
    const again = await openStore(state, { problem: m => problems.push(m) })
    try {
      assert.equal(fs.existsSync(path.join(files, 'd')), false)
      assert.equal((await again.commit(version('d/x', 'mine again', 4000), Buffer.from('mine again'))).committed, true)
      assert.equal(fs.lstatSync(path.join(files, 'd')).isDirectory(), true)
      untouched(outside)
    } finally {
      await again.close()
    }
  })
})

test('every envelope is re-verified at open: a corrupted signature or one the policy refuses is moved aside with its content', async () => {
  await withRoot(async ({ state, problems }) => {
    const store = await openStore(state)
    await store.commit(version('good', 'g', 1000), Buffer.from('g'))
    await store.commit(version('forged', 'f', 1000), Buffer.from('f'))
    await store.commit(version('foreign', 'o', 1000), Buffer.from('o'))
    await store.close()
    // Flip one byte of the signature (the envelope's last 64 bytes).
    const sig = path.join(state, 'versions/forged.sig')
    const env = fs.readFileSync(sig)
    env[env.length - 1] ^= 1
    fs.writeFileSync(sig, env)

    const verify = (v: SignedVersion): true | string => v.name === 'foreign' ? 'signed for another network' : true
    const again = await openStore(state, { problem: m => problems.push(m), verify })
    try {
      assert.deepEqual([...again.entries()].map(e => e.name).sort(), ['good'])
      assert.equal(problems.length, 4, problems.join('\n')) // two envelopes, then their two files
      for (const name of ['forged', 'foreign']) {
        assert.equal(fs.existsSync(path.join(state, 'versions', `${name}.sig`)), false, `${name}.sig left in versions/`)
        assert.equal(fs.existsSync(path.join(state, 'files', name)), false, `${name} left in files/`)
      }
      assert.equal(fs.readdirSync(path.join(state, 'quarantine')).length, 4)
      // The good one is untouched, and a refused name can be stored again (fetched from peers).
      assert.equal(fs.readFileSync(path.join(state, 'files/good'), 'utf8'), 'g')
      assert.equal((await again.commit(version('forged', 'f', 1000), Buffer.from('f'))).committed, true)
      assert.ok(fs.readFileSync(sig).equals(encodeEnvelope(version('forged', 'f', 1000))))
    } finally {
      await again.close()
    }
  })
})
