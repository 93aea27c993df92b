import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { decodeEnvelope } from '../../src/format/version.ts'
import {
  SKEW_MS, c, nextTs, files, useHostileStage, refusalLogged, assertAlive
} from '../helpers/hostile-stage.ts'

/*
 * Faults on a real daemon: SIGKILL in the middle of commits, a full disk.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage({ pair: false })

// ---------------------------------------------------------------------------
// Faults: a crash in the middle of a write, a full disk

test('a daemon killed with SIGKILL in the middle of commits comes back with whole files only', async t => {
  const node = await c.add({ files: files(), maxClockSkewMs: SKEW_MS, bootstrap: [] })
  await node.start()
  const stateDir = path.join(node.dir, 'state')
  try {
    let held = Buffer.from('crash: the first version')
    await node.submit(c.sign('big.bin', held, nextTs()), held)
    const seen: string[] = []
    // Kill points: as the commit starts staging, as it passes its commit point (the envelope renamed into
    // versions/, before the content is renamed into files/), and after the publish was acknowledged. The
    // kill lands a little after its trigger; wherever it lands, the invariant must hold.
    for (const trigger of ['staging', 'commit point', 'acknowledged', 'staging', 'commit point']) {
      const next = randomBytes(8 * 1024 * 1024)
      const watched = trigger === 'staging' ? path.join(stateDir, 'staging') : path.join(stateDir, 'versions')
      const kill = (): void => { node.proc?.kill('SIGKILL') }
      const watcher = trigger === 'acknowledged' ? undefined : fs.watch(watched, (_event, file) => { if (trigger === 'staging' || file === 'big.bin.sig') kill() })
      const publish = await node.submit(c.sign('big.bin', next, nextTs()), next).then(() => 'acknowledged', () => 'lost')
      watcher?.close()
      await node.stop(true)
      // What the crash left: an envelope already committed over older content means start-up must roll forward.
      const committed = decodeEnvelope(fs.readFileSync(path.join(stateDir, 'versions', 'big.bin.sig')))
      const onDisk = node.file('big.bin')
      const needsRollForward = onDisk === undefined || !createHash('sha256').update(onDisk).digest().equals(committed.sha256)
      await node.start()
      const now = node.file('big.bin') as Buffer
      assert.ok(now !== undefined && (now.equals(held) || now.equals(next)), `${trigger}: the file is the whole old or the whole new version`)
      if (publish === 'acknowledged') assert.ok(now.equals(next), `${trigger}: an acknowledged publish survives the crash`)
      const listed = (await node.api<Array<{ name: string, sha256: string, present: boolean }>>('/v1/versions')).find(e => e.name === 'big.bin')
      assert.equal(listed?.present, true)
      assert.equal(listed?.sha256, createHash('sha256').update(now).digest('hex'), `${trigger}: the index agrees with the file`)
      assert.deepEqual(fs.readdirSync(path.join(stateDir, 'staging')), [], 'staging/ is emptied at start')
      assert.deepEqual(fs.readdirSync(node.filesDir), ['big.bin'], 'no temporary file in files/')
      if (needsRollForward) assert.ok(createHash('sha256').update(now).digest().equals(committed.sha256), 'rolled forward to the committed envelope')
      seen.push(`${trigger}: ${publish}, came back with the ${now.equals(next) ? 'new' : 'old'} version${needsRollForward ? ' (rolled forward)' : ''}`)
      if (now.equals(next)) held = next
    }
    t.diagnostic(`kills: ${seen.join('; ')}`)
  } finally {
    await node.stop()
  }
})

/** True when this process may mount a tmpfs (root in a privileged environment): needed to fill a disk for real. */
function canMountTmpfs (): boolean {
  if (process.getuid?.() !== 0) return false
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-mount-probe-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' })
    execFileSync('umount', [dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('a full disk: the write fails cleanly, the held version stays whole, the daemon recovers once space is back', {
  skip: canMountTmpfs() ? false : 'needs root to mount a small tmpfs as the state directory'
}, async () => {
  const node = await c.add({ files: files(), maxClockSkewMs: SKEW_MS, bootstrap: [] })
  const stateDir = path.join(node.dir, 'state')
  // The harness created the identity (dm id) before the mount would hide it: carry it over.
  const identity = fs.readFileSync(path.join(stateDir, 'identity.key'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0750', 'tmpfs', stateDir])
  try {
    fs.writeFileSync(path.join(stateDir, 'identity.key'), identity, { mode: 0o600 })
    await node.start()
    const small = randomBytes(1024 * 1024)
    await node.submit(c.sign('big.bin', small, nextTs()), small)
    const from = node.log.length
    const big = randomBytes(2560 * 1024) // 1 MiB held + 2.5 MiB staged > 3 MiB
    await assert.rejects(node.submit(c.sign('big.bin', big, nextTs()), big), (err: { code?: string }) => err.code === 'ERR_STORE_IO')
    await refusalLogged(node, from, 'ERR_STORE_IO')
    assert.deepEqual(node.file('big.bin'), small, 'the held version is intact')
    assert.deepEqual(fs.readdirSync(path.join(stateDir, 'staging')), [], 'the failed commit left nothing staged')
    await assertAlive(node)
    execFileSync('mount', ['-o', 'remount,size=32m', stateDir])
    const again = c.sign('big.bin', big, nextTs())
    await node.submit(again, big)
    assert.deepEqual(node.file('big.bin'), big)
  } finally {
    await node.stop()
    execFileSync('umount', [stateDir])
  }
})
