import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { writeFileDurableSync } from '../../src/store/durable.js'
import { LOCK_FILE, lockStateDir } from '../../src/store/lock.js'
import { CORRUPT_PEERS_FILE, PEERS_FILE, loadPeers, savePeers } from '../../src/daemon/peers-file.js'
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../src/net/identity.js'
import { dmError, tempDir } from './helpers.js'

async function withDir (fn: (dir: string) => Promise<void> | void): Promise<void> {
  const { dir, cleanup } = tempDir('dm-files-')
  try {
    await fn(dir)
  } finally {
    cleanup()
  }
}

test('the durable writer replaces a file whole, leaves no temporary file, and replaces a symlink instead of writing through it', async () => {
  await withDir(dir => {
    const outside = path.join(dir, 'outside')
    fs.writeFileSync(outside, 'precious')
    const file = path.join(dir, 'f')
    fs.symlinkSync(outside, file)
    writeFileDurableSync(file, 'new', 0o600)
    assert.equal(fs.readFileSync(outside, 'utf8'), 'precious')
    assert.equal(fs.lstatSync(file).isFile(), true)
    assert.equal(fs.readFileSync(file, 'utf8'), 'new')
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.deepEqual(fs.readdirSync(dir).sort(), ['f', 'outside'])
    // A failure surfaces (here: the directory is gone) instead of being swallowed.
    assert.throws(() => writeFileDurableSync(path.join(dir, 'missing', 'f'), 'x'), { code: 'ENOENT' })
  })
})

test('peers.json: saved and loaded; a corrupt one is moved aside with a warning; a read error is thrown, not taken for a first boot', async () => {
  await withDir(dir => {
    const peers = [{ id: '12D3KooWtest', addrs: ['/ip4/10.0.0.1/tcp/7946'] }]
    assert.deepEqual(loadPeers(dir), [], 'missing: first boot')
    savePeers(dir, peers)
    assert.deepEqual(loadPeers(dir), peers)

    fs.writeFileSync(path.join(dir, PEERS_FILE), '{"truncated": [')
    const problems: string[] = []
    assert.deepEqual(loadPeers(dir, m => problems.push(m)), [])
    assert.equal(problems.length, 1)
    assert.equal(fs.readFileSync(path.join(dir, CORRUPT_PEERS_FILE), 'utf8'), '{"truncated": [')
    assert.equal(fs.existsSync(path.join(dir, PEERS_FILE)), false)

    // EISDIR stands for any I/O error (EIO, EMFILE…): it must surface.
    fs.mkdirSync(path.join(dir, PEERS_FILE))
    assert.throws(() => loadPeers(dir), dmError('ERR_STORE_IO'))
  })
})

test('identity.key: created durably with mode 0600 and stable; a corrupt or symlinked one is ERR_KEY, never silently replaced', async () => {
  await withDir(async dir => {
    const first = await loadOrCreateIdentity(dir)
    const file = path.join(dir, IDENTITY_FILE)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.equal((await loadOrCreateIdentity(dir)).peerId.toString(), first.peerId.toString())
    assert.deepEqual(fs.readdirSync(dir), [IDENTITY_FILE])

    const bytes = fs.readFileSync(file)
    fs.writeFileSync(file, 'garbage')
    await assert.rejects(loadOrCreateIdentity(dir), dmError('ERR_KEY'))
    assert.equal(fs.readFileSync(file, 'utf8'), 'garbage', 'a corrupt identity was replaced')

    fs.writeFileSync(path.join(dir, 'elsewhere'), bytes)
    fs.rmSync(file)
    fs.symlinkSync(path.join(dir, 'elsewhere'), file)
    await assert.rejects(loadOrCreateIdentity(dir), dmError('ERR_KEY'))
  })
})

test('the state directory lock: a second holder is refused naming the first pid; release and a dead holder free it', async () => {
  await withDir(async dir => {
    const lock = lockStateDir(dir)
    assert.throws(() => lockStateDir(dir), dmError('ERR_STATE_DIR_LOCKED', new RegExp(`pid ${process.pid}\\b`)))
    lock.release()
    assert.equal(fs.existsSync(path.join(dir, LOCK_FILE)), false)
    lockStateDir(dir).release()

    // Held by another running process: refused, naming it.
    const child = spawn(process.execPath, ['--import', 'tsx', '-e',
      `const { lockStateDir } = await import(${JSON.stringify(path.resolve('src/store/lock.ts'))}); lockStateDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000)`],
    { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve() })
        child.on('exit', code => reject(new Error(`child exited with ${String(code)}`)))
      })
      assert.throws(() => lockStateDir(dir), dmError('ERR_STATE_DIR_LOCKED', new RegExp(`pid ${child.pid as number}\\b`)))
    } finally {
      child.kill('SIGKILL')
      await new Promise(resolve => child.once('exit', resolve))
    }
    // The holder died without releasing: its lock is stale and taken over.
    assert.ok(fs.existsSync(path.join(dir, LOCK_FILE)))
    const taken = lockStateDir(dir)
    assert.match(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid} `))
    taken.release()

    // A lock left by a pid reused after a reboot (another boot id) is stale too.
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.pid} some-other-boot 1\n`)
    lockStateDir(dir).release()
  })
})
