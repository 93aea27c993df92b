import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Cluster, runDm, newSigningKey } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { compareVersions, versionId } from '../../src/format/version.ts'

// Real daemons over real libp2p on 127.0.0.1. The push-pull interval is a
// minute, so anything that arrives within the deadlines below arrived by push
// or by the push-pull a (re)connection starts, not by the periodic round.

let c: Cluster
before(async () => { c = await Cluster.start(4) })
after(async () => { await c?.stop() })

test('a file published on one node appears with identical bytes on all', async () => {
  const file = path.join(c.root, 'hello.txt')
  const content = Buffer.from('hello mesh ' + Date.now())
  fs.writeFileSync(file, content)
  const r = await runDm(['publish', file, '--key', c.key.path, '--config', c.nodes[1].configPath])
  assert.equal(r.code, 0, r.stderr)
  await c.waitAll('hello.txt', content)
  for (const n of c.nodes) assert.deepEqual(n.file('hello.txt'), content)
})

test('nested names land in subdirectories', async () => {
  const content = Buffer.from('www IN CNAME web1\n')
  await c.nodes[0].submit(c.sign('dns/cnames', content), content)
  await c.waitAll('dns/cnames', content)
})

test('a newer version replaces the file everywhere; an older one never does', async () => {
  const t = Date.now()
  const v1 = Buffer.from('version one')
  const v2 = Buffer.from('version two')
  await c.nodes[0].submit(c.sign('hello.txt', v1, t + 1), v1)
  await c.waitAll('hello.txt', v1)
  await c.nodes[2].submit(c.sign('hello.txt', v2, t + 2), v2)
  await c.waitAll('hello.txt', v2)

  const old = Buffer.from('older than two')
  await assert.rejects(c.nodes[3].submit(c.sign('hello.txt', old, t + 1), old), (err: { code?: string }) => err.code === 'ERR_STALE')
  // A later marker proves the mesh moved on after the stale attempt; the old one is still nowhere.
  const marker = Buffer.from('marker ' + t)
  await c.nodes[3].submit(c.sign('dns/cnames', marker, t + 3), marker)
  await c.waitAll('dns/cnames', marker)
  for (const n of c.nodes) assert.deepEqual(n.file('hello.txt'), v2)
})

test('concurrent publishes of one name on different nodes converge on the same version', async () => {
  for (let round = 0; round < 3; round++) {
    const t = Date.now()
    const a = Buffer.from(`from n1 ${round}`)
    const b = Buffer.from(`from n2 ${round}`)
    // Equal timestamps on alternate rounds exercise the tie-break.
    const va = c.sign('hello.txt', a, t)
    const vb = c.sign('hello.txt', b, round % 2 === 0 ? t : t + 1)
    const results = await Promise.allSettled([c.nodes[1].submit(va, a), c.nodes[2].submit(vb, b)])
    const aWins = compareVersions({ timestampMs: va.timestampMs, id: versionId(va) }, { timestampMs: vb.timestampMs, id: versionId(vb) }) > 0
    // The winner is always stored; the loser may be refused as stale, when the
    // winner, committed and pushed first, reached its node before its own commit.
    assert.equal(results[aWins ? 0 : 1].status, 'fulfilled', 'the newer version is stored where it was published')
    const loser = results[aWins ? 1 : 0]
    if (loser.status === 'rejected') assert.equal((loser.reason as { code?: string }).code, 'ERR_STALE')
    await c.waitAll('hello.txt', aWins ? a : b)
  }
})

test('a stopped node misses two updates and catches up on reconnect, before any periodic round', async () => {
  const late = c.nodes[3]
  await late.stop()
  const t = Date.now()
  const u1 = Buffer.from('update one while away')
  const u2 = Buffer.from('update two while away')
  await c.nodes[1].submit(c.sign('hello.txt', u1, t), u1)
  await c.nodes[1].submit(c.sign('dns/cnames', u2, t), u2)
  await c.waitAll('hello.txt', u1, c.nodes.slice(0, 3))
  assert.notDeepEqual(late.file('hello.txt'), u1)
  const restartedAt = Date.now()
  await late.start()
  await waitFor('catch-up', () => late.file('hello.txt')?.equals(u1) === true && late.file('dns/cnames')?.equals(u2) === true, 10_000)
  // The interval is 60 s: catching up this fast means the rejoin started a push-pull.
  assert.ok(Date.now() - restartedAt < 10_000)
})

test('a version signed by an unlisted key is refused by the local daemon', async () => {
  const stranger = newSigningKey(c.root, 'stranger')
  const file = path.join(c.root, 'hello.txt')
  fs.writeFileSync(file, 'not yours')
  const r = await runDm(['publish', file, '--key', stranger.path, '--config', c.nodes[0].configPath])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /\(ERR_SIGNER_NOT_ALLOWED\)$/m)
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr')
})

test('dm delete removes a file everywhere, and an older version cannot bring it back', async () => {
  const content = Buffer.from('to be deleted')
  const t = Date.now()
  await c.nodes[0].submit(c.sign('dns/cnames', content, t), content)
  await c.waitAll('dns/cnames', content)
  const r = await runDm(['delete', 'dns/cnames', '--key', c.key.path, '--config', c.nodes[2].configPath])
  assert.equal(r.code, 0, r.stderr)
  // The file goes from disk before the tombstone's commit is durable; the daemon answers from what it holds once it is.
  await Promise.all(c.nodes.map(async n => await waitFor(`deleted on ${n.name}`, async () =>
    n.file('dns/cnames') === undefined &&
    (await n.api<Array<{ name: string, tombstone: boolean }>>('/v1/versions')).some(v => v.name === 'dns/cnames' && v.tombstone))))
  await assert.rejects(c.nodes[1].submit(c.sign('dns/cnames', content, t), content), (err: { code?: string }) => err.code === 'ERR_STALE')
})

test('a version published with --ttl disappears everywhere when it expires', async () => {
  const file = path.join(c.root, 'grant')
  fs.writeFileSync(file, 'temporary grant ' + Date.now())
  const r = await runDm(['publish', file, '--name', 'hello.txt', '--ttl', '2', '--key', c.key.path, '--config', c.nodes[0].configPath])
  assert.equal(r.code, 0, r.stderr)
  const content = fs.readFileSync(file)
  await c.waitAll('hello.txt', content)
  await Promise.all(c.nodes.map(async n => await waitFor(`expired on ${n.name}`, () => n.file('hello.txt') === undefined, 10_000)))
})

test('the mesh keeps replicating with the bootstrap node down', async () => {
  const [boot, ...rest] = c.nodes
  // Members learned from each other: every node has a peer other than the bootstrap node.
  await Promise.all(rest.map(async n => await waitFor(`${n.name} has non-bootstrap peers`, async () => {
    const peers = await n.api<Array<{ id: string, connected: boolean }>>('/v1/peers')
    return peers.some(p => p.connected && p.id !== boot.peerId)
  })))
  await boot.stop()
  const content = Buffer.from('after the bootstrap node left ' + Date.now())
  await rest[0].submit(c.sign('hello.txt', content), content)
  await c.waitAll('hello.txt', content, rest)
  await boot.start()
  await c.waitAll('hello.txt', content)
})

/*
 * Keys off the nodes, end to end: sign on a machine with no daemon and no
 * config, copy the files, publish on a node that has no key; the version
 * spreads. Then delete the same way, and read back with dm get / dm list.
 * (dns/cnames was tombstoned above, earlier than anything signed now.)
 */
test('offline sign, then dm publish --sig on a node: it spreads; an offline tombstone deletes it everywhere', async () => {
  const offline = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-offline-'))
  try {
    const [a, b] = c.nodes.slice(1, 3)
    // The "laptop": only the key and the file, no config, no daemon.
    const file = path.join(offline, 'cnames')
    const content = Buffer.from('www CNAME web1\n')
    fs.writeFileSync(file, content)
    const sig = path.join(offline, 'cnames.sig')
    const signed = await runDm(['sign', file, '--name', 'dns/cnames', '--key', c.key.path, '--network', 'test-net', '--ttl', '1d', '--out', sig], { cwd: offline })
    assert.equal(signed.code, 0, signed.stderr)

    // The node: the copied files, no key.
    const published = await runDm(['publish', file, '--sig', sig, '--config', a.configPath])
    assert.equal(published.code, 0, published.stderr)
    await c.waitAll('dns/cnames', content)

    const got = await runDm(['get', 'dns/cnames', '--config', b.configPath])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.stdout, content.toString())
    const detail = JSON.parse((await runDm(['list', 'dns/cnames', '--json', '--config', b.configPath])).stdout) as { state: string, expiresAtMs: number, signer: string }
    assert.equal(detail.state, 'present')
    assert.equal(detail.signer, c.key.base64)
    assert.ok(detail.expiresAtMs > Date.now() + 23 * 3600_000, '--ttl 1d was signed in')

    // A signature for other content is refused before anything is sent.
    fs.writeFileSync(file, 'something else\n')
    const mismatch = await runDm(['publish', file, '--sig', sig, '--config', a.configPath])
    assert.equal(mismatch.code, 1)
    assert.match(mismatch.stderr, /^dm: /)

    const tomb = path.join(offline, 'cnames.tomb')
    assert.equal((await runDm(['sign', '--tombstone', 'dns/cnames', '--key', c.key.path, '--network', 'test-net', '--out', tomb], { cwd: offline })).code, 0)
    const deleted = await runDm(['publish', '--sig', tomb, '--config', b.configPath])
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.match(deleted.stdout, /^deleted "dns\/cnames"/)
    await waitFor('the file gone on every node', () => c.nodes.every(n => n.file('dns/cnames') === undefined))
    await waitFor('tombstoned on a', async () => JSON.parse((await runDm(['list', 'dns/cnames', '--json', '--config', a.configPath])).stdout).state === 'tombstoned')
    assert.equal((await runDm(['get', 'dns/cnames', '--config', a.configPath])).code, 5)
  } finally {
    fs.rmSync(offline, { recursive: true, force: true })
  }
})
