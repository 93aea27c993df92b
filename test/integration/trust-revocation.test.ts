import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Cluster, newSigningKey, runDm, type TestNode } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { admit, nodeKey, privateMesh } from '../helpers/private-mesh.ts'

/*
 * Fleet-wide revocation through the mesh, with real daemons. A compromised
 * key publishes a hostile authorized_keys; the network key's holder revokes
 * it with dm revoke. On every node, including one that was offline during
 * both and one that was offline during the revocation only, the hostile file
 * is gone and never returns; an admin's version replaces it even though it is
 * older; and a revoked node is disconnected.
 */

let c: Cluster
after(async () => { await c?.stop() })

test('revocation: a compromised signer\'s file vanishes everywhere, even on nodes that were away, and never returns; a revoked node is cut off', async () => {
  c = new Cluster('dm-revoke-')
  const network = newSigningKey(c.root, 'network')
  const admin = newSigningKey(c.root, 'admin')
  const mallory = newSigningKey(c.root, 'mallory')
  const files = { 'access/authorized_keys': [admin.base64, mallory.base64] }
  const nodes: TestNode[] = []
  for (let i = 0; i < 4; i++) {
    const n = await c.add({ files, pushPullIntervalMs: 500 })
    n.setOptions({ extra: privateMesh(network, admit(n, network)) })
    nodes.push(n)
  }
  const [n0, n1, away, late] = nodes
  await n0.start()
  await Promise.all([n1, away, late].map(async n => await n.start()))
  await waitFor('all connected', async () => (await Promise.all(nodes.map(async n => await n.connectedPeers()))).every(k => k > 0))

  // "away" is offline through both events; "late" sees the hostile file, then misses the revocation.
  await away.stop()
  const t0 = Date.now()
  const hostile = Buffer.from('ssh-ed25519 AAAA mallory\n')
  await n1.submit(c.sign('access/authorized_keys', hostile, t0, mallory), hostile)
  await c.waitAll('access/authorized_keys', hostile, [n0, n1, late])
  await late.stop()

  const r = await runDm(['revoke', '--signer', mallory.base64, '--reason', 'laptop stolen', '--network-key', network.path, '--config', n0.configPath])
  assert.equal(r.code, 0, r.stderr)
  await waitFor('the hostile file is withdrawn on the running nodes', () => [n0, n1].every(n => n.file('access/authorized_keys') === undefined))

  await late.start()
  await away.start()
  await waitFor('the nodes that were away hold the list and no hostile file', async () => {
    const held = await Promise.all([late, away].map(async n => (await n.api<Array<{ name: string }>>('/v1/versions')).some(v => v.name === '_dm/revocations')))
    return held.every(Boolean) && [late, away].every(n => n.file('access/authorized_keys') === undefined)
  }, 20_000)

  // The compromised key is refused from now on, and an admin's version replaces the hostile one though it is older.
  const refusal = await n0.submit(c.sign('access/authorized_keys', Buffer.from('again'), t0 + 60_000, mallory), Buffer.from('again')).then(() => 'accepted', (err: { code?: string }) => err.code)
  assert.equal(refusal, 'ERR_REVOKED')
  const clean = Buffer.from('ssh-ed25519 AAAA admin\n')
  await n0.submit(c.sign('access/authorized_keys', clean, t0 - 60_000, admin), clean)
  await c.waitAll('access/authorized_keys', clean, nodes)
  // Several rounds later, nothing brought the hostile file back anywhere.
  const rounds = await Promise.all(nodes.map(async n => (await n.api<{ syncRounds: number }>('/v1/status')).syncRounds))
  await waitFor('a few more sync rounds everywhere', async () => (await Promise.all(nodes.map(async (n, i) => (await n.api<{ syncRounds: number }>('/v1/status')).syncRounds > rounds[i] + 2))).every(Boolean), 20_000)
  for (const n of nodes) assert.deepEqual(n.file('access/authorized_keys'), clean, n.name)

  // A revoked node is disconnected everywhere.
  const r2 = await runDm(['revoke', '--node', Buffer.from(nodeKey(late)).toString('base64'), '--reason', 'decommissioned', '--network-key', network.path, '--config', n0.configPath])
  assert.equal(r2.code, 0, r2.stderr)
  await waitFor('the revoked node has no peer', async () => (await late.connectedPeers()) === 0, 20_000)
})
