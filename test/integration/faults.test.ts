import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Cluster, type TestNode } from '../helpers/cluster.ts'
import { seededRandom } from '../../src/sim/prng.ts'
import { testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/wait.ts'

// Faults, for real: kill -9 mid-write, a full disk, a network partition,
// skewed clocks. Each ends with the mesh converged and nothing torn.

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const clusters: Cluster[] = []
after(async () => { for (const c of clusters) await c.stop() })

function can (cmd: string, args: string[]): boolean {
  try { execFileSync(cmd, args, { stdio: 'ignore' }); return true } catch { return false }
}

/** Every file under files/ is byte-identical to a published version, and /v1/versions agrees with the disk. */
async function assertConsistent (node: TestNode, published: Set<string>): Promise<void> {
  const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)])
  for (const file of walk(node.filesDir)) {
    assert.ok(published.has(sha(fs.readFileSync(file))), `${file} is not a published version`)
  }
  // The node keeps syncing while we look, so a newer version may land between reading the index and a
  // file: the index and the disk must agree at some moment, not at the instant of each read.
  await waitFor('index and disk agree', async () => {
    const held = await node.api<Array<{ name: string, sha256: string, present: boolean, tombstone: boolean }>>('/v1/versions')
    return held.every(v => !v.present || v.tombstone || sha(fs.readFileSync(path.join(node.filesDir, v.name))) === v.sha256)
  }, 10_000)
}

test('kill -9 at random moments while versions arrive: never a torn file, the index agrees, the node converges', async () => {
  const c = new Cluster()
  clusters.push(c)
  const names = Array.from({ length: 6 }, (_, i) => `f${i}`)
  const files = Object.fromEntries(names.map(n => [n, [c.key.base64]]))
  const src = await c.add({ files })
  const victim = await c.add({ files })
  await Promise.all(c.nodes.map(async n => await n.start()))
  await waitFor('connected', async () => (await victim.connectedPeers()) > 0)

  const random = seededRandom(testSeed())
  const published = new Set<string>()
  const latest = new Map<string, Buffer>()
  let t = Date.now()
  for (let round = 0; round < 6; round++) {
    // A burst of versions the victim receives while it is killed at a random moment.
    const burst = (async () => {
      for (let i = 0; i < 12; i++) {
        const name = names[i % names.length]
        const content = randomBytes(64 * 1024 + Math.floor(random() * 200 * 1024))
        published.add(sha(content))
        latest.set(name, content)
        await src.submit(c.sign(name, content, ++t), content)
      }
    })()
    await new Promise(resolve => setTimeout(resolve, random() * 60))
    await victim.stop(true)
    await burst
    await victim.start()
    await assertConsistent(victim, published)
  }
  await Promise.all([...latest].map(async ([name, content]) => await waitFor(`${name} converged`, () => victim.file(name)?.equals(content) === true)))
  await assertConsistent(victim, published)
})

test('a full disk refuses the write, keeps the previous version, and the version arrives once there is room', { skip: !can('mount', ['--version']) }, async (t) => {
  const c = new Cluster()
  clusters.push(c)
  const files = { 'big.bin': [c.key.base64] }
  const src = await c.add({ files })
  const full = await c.add({ files, pushPullIntervalMs: 1000 })
  // The victim's state_dir is a 3 MiB tmpfs.
  const state = path.join(full.dir, 'state')
  fs.mkdirSync(state, { recursive: true })
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0750', 'tmpfs', state], { stdio: 'pipe' })
  } catch (err) {
    t.skip(`cannot mount a tmpfs here: ${String(err)}`)
    return
  }
  try {
    await full.identify()
    await Promise.all(c.nodes.map(async n => await n.start()))
    await waitFor('connected', async () => (await full.connectedPeers()) > 0)

    const small = randomBytes(512 * 1024)
    await src.submit(c.sign('big.bin', small, Date.now() - 10), small)
    await c.waitAll('big.bin', small)

    // Fill the disk, then send a version that cannot fit.
    const filler = path.join(state, 'filler')
    try { fs.writeFileSync(filler, Buffer.alloc(3 * 1024 * 1024)) } catch {}
    const large = randomBytes(1024 * 1024)
    await src.submit(c.sign('big.bin', large, Date.now()), large)
    await waitFor('the write failure is reported', () => full.logLines().some(l => l.code === 'ERR_STORE_IO'))
    assert.deepEqual(full.file('big.bin'), small, 'the previous version is intact')
    assert.equal(fs.readdirSync(path.join(state, 'staging')).length, 0, 'no staged leftovers')

    // Room again: the next push-pull round fetches it.
    fs.rmSync(filler)
    await waitFor('the version arrives after the disk has room', () => full.file('big.bin')?.equals(large) === true)
  } finally {
    await full.stop()
    execFileSync('umount', ['-l', state])
  }
})

test('a partition between two network namespaces heals and both sides converge', { skip: !can('ip', ['-V']) }, async (t) => {
  const tag = `dm${process.pid % 10000}`
  const [nsA, nsB] = [`${tag}a`, `${tag}b`]
  const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'pipe' }) }
  try {
    ip('netns', 'add', nsA)
    ip('netns', 'add', nsB)
  } catch (err) {
    t.skip(`cannot create network namespaces here: ${String(err)}`)
    return
  }
  // Two test hosts joined by a veth pair: 10.231.0.1 (side A) and 10.231.0.2 (side B).
  const hostA = '10.231.0.1'
  const hostB = '10.231.0.2'
  try {
    ip('link', 'add', `${tag}va`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}vb`, 'netns', nsB)
    ip('-n', nsA, 'addr', 'add', `${hostA}/24`, 'dev', `${tag}va`)
    ip('-n', nsB, 'addr', 'add', `${hostB}/24`, 'dev', `${tag}vb`)
    for (const [ns, dev] of [[nsA, `${tag}va`], [nsB, `${tag}vb`]]) {
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'link', 'set', dev, 'up')
    }
    const c = new Cluster()
    clusters.push(c)
    const files = { left: [c.key.base64], right: [c.key.base64], both: [c.key.base64] }
    const side = (ns: string, host: string) => ({ files, host, wrap: ['ip', 'netns', 'exec', ns], pushPullIntervalMs: 1000 })
    const a0 = await c.add(side(nsA, hostA))
    const a1 = await c.add(side(nsA, hostA))
    const b0 = await c.add(side(nsB, hostB))
    const b1 = await c.add(side(nsB, hostB))
    for (const n of c.nodes) await n.start()
    // Wait until each side's two nodes know each other directly, so each side works alone.
    await waitFor('b0 and b1 connected directly', async () =>
      (await b0.api<Array<{ id: string, connected: boolean }>>('/v1/peers')).some(p => p.id === b1.peerId && p.connected), 20_000)
    await waitFor('a1 connected', async () => (await a1.connectedPeers()) > 0)

    ip('-n', nsA, 'link', 'set', `${tag}va`, 'down')
    const now = Date.now()
    const left = Buffer.from('written on side A')
    const right = Buffer.from('written on side B')
    const bothA = Buffer.from('both: side A')
    const bothB = Buffer.from('both: side B')
    await a0.submit(c.sign('left', left, now), left)
    await a0.submit(c.sign('both', bothA, now), bothA)
    await b1.submit(c.sign('right', right, now), right)
    await b1.submit(c.sign('both', bothB, now + 1), bothB) // side B's is newer
    await c.waitAll('left', left, [a0, a1])
    await c.waitAll('right', right, [b0, b1])
    assert.equal(b0.file('left'), undefined, 'side B cannot see side A')
    assert.equal(a1.file('right'), undefined, 'side A cannot see side B')

    ip('-n', nsA, 'link', 'set', `${tag}va`, 'up')
    await c.waitAll('left', left, c.nodes, 45_000)
    await c.waitAll('right', right, c.nodes, 45_000)
    await c.waitAll('both', bothB, c.nodes, 45_000)
  } finally {
    for (const c of clusters.splice(0)) await c.stop()
    try { ip('netns', 'del', nsA) } catch {}
    try { ip('netns', 'del', nsB) } catch {}
  }
})

// libfaketime preloaded into the daemon itself (the faketime wrapper forks, which would hide the pid).
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find(f => fs.existsSync(f))

test('nodes whose clocks differ by less than the skew limit converge', { skip: LIBFAKETIME === undefined ? 'libfaketime is not installed' : false }, async () => {
  const c = new Cluster()
  clusters.push(c)
  // Skew limit 60 s; one node runs 25 s ahead, one 25 s behind: 50 s apart.
  const opts = { maxClockSkewMs: 60_000 }
  const fake = (offset: string) => ({ ...opts, env: { LD_PRELOAD: LIBFAKETIME as string, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' } })
  const ahead = await c.add(fake('+25s'))
  const behind = await c.add(fake('-25s'))
  const plain = await c.add(opts)
  // When each daemon was seen ready on this process's clock, to compare with the time it stamped.
  const readyAt = new Map<TestNode, number>()
  await Promise.all(c.nodes.map(async n => { await n.start(); readyAt.set(n, Date.now()) }))
  await Promise.all(c.nodes.map(async n => await waitFor(`${n.name} connected`, async () => (await n.connectedPeers()) > 0)))
  // The skew is real: each daemon dates the reading of its config with its own clock, a moment before
  // it is seen ready (however late each one started on a busy machine).
  const loadedAt = new Map<TestNode, number>()
  for (const n of c.nodes) loadedAt.set(n, (await n.api<{ config: { loadedAtMs: number } }>('/v1/status')).config.loadedAtMs)
  const skewOf = (n: TestNode): number => (loadedAt.get(n) as number) - (readyAt.get(n) as number)
  assert.ok(skewOf(ahead) > 15_000 && skewOf(behind) < -15_000, `the daemons' clocks run ahead and behind (${skewOf(ahead)} ms, ${skewOf(behind)} ms)`)
  // Each publisher signs with its own node's clock.
  const fromBehind = Buffer.from('signed on the slow clock')
  await behind.submit(c.sign('hello.txt', fromBehind, Date.now() - 25_000), fromBehind)
  await c.waitAll('hello.txt', fromBehind)
  // 50 s in the future for the slow node: within the limit, so accepted at once everywhere.
  const newer = Buffer.from('signed on the fast clock')
  await ahead.submit(c.sign('hello.txt', newer, Date.now() + 25_000), newer)
  await c.waitAll('hello.txt', newer)
  assert.deepEqual(plain.file('hello.txt'), newer)
})
