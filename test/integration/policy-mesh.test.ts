import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Cluster, newSigningKey } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

let c: Cluster
after(async () => { await c?.stop() })

test('a version injected by a laxer node is refused by strict nodes and does not spread through them', async () => {
  c = new Cluster()
  const mallory = newSigningKey(c.root, 'mallory')
  const strict = { 'hello.txt': [c.key.base64], marker: [c.key.base64] }
  const s0 = await c.add({ files: strict })
  const s1 = await c.add({ files: strict })
  // The lax node trusts mallory; it is only connected to s0 (it bootstraps there and wants one peer).
  const lax = await c.add({ files: { 'hello.txt': [c.key.base64, mallory.base64], marker: [c.key.base64] }, extra: 'target_peers = 1' })
  await Promise.all(c.nodes.map(async n => await n.start()))
  await Promise.all(c.nodes.map(async n => await waitFor(`${n.name} connected`, async () => (await n.connectedPeers()) > 0)))

  const evil = Buffer.from('mallory was here')
  await lax.submit(c.sign('hello.txt', evil, Date.now(), mallory), evil)
  assert.deepEqual(lax.file('hello.txt'), evil, 'the lax node accepts it')

  // A later, honest version from the lax node reaches everyone: the bad one had its chance to spread.
  const marker = Buffer.from('honest marker')
  await lax.submit(c.sign('marker', marker), marker)
  await c.waitAll('marker', marker)
  await waitFor('s0 logs the refusal', () => s0.log.includes('ERR_SIGNER_NOT_ALLOWED'))
  assert.equal(s0.file('hello.txt'), undefined)
  assert.equal(s1.file('hello.txt'), undefined)
  assert.ok(!s1.log.includes('"mallory was here"'))

  // An honest version of the same name still spreads to all three.
  const good = Buffer.from('the real one')
  await s1.submit(c.sign('hello.txt', good), good)
  await c.waitAll('hello.txt', good)
})
