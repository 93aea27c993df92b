import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { Cluster, TestNode, runDm } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import type { StatusInfo } from '../../src/api/wire.ts'
import { assertOneLineError } from '../helpers/cli-error.ts'

/*
 * Failures that must not look healthy: a bootstrap entry that names the wrong
 * node, with real daemons. The node says why, in `dm peers` and `dm status`.
 */

test('a bootstrap entry with the wrong peer id: dm peers gives the reason, dm status exits 4 (degraded) until a peer connects', async () => {
  const c = new Cluster()
  try {
    const a = await c.add({ bootstrap: [] })
    const decoy = await c.add({ bootstrap: [] })
    await Promise.all([a.start(), decoy.start()])
    // b's bootstrap points at a's address with the decoy's peer id: the wrong node answers.
    const b = await c.add({ bootstrap: [`/ip4/127.0.0.1/tcp/${a.port}/p2p/${decoy.peerId}`] })
    await decoy.stop()
    await b.start()
    const failed = await waitFor('a dial error for the bootstrap entry', async () => {
      const peers = await b.api<Array<{ id: string, bootstrap: boolean, lastError: string | null, lastErrorCode: string | null }>>('/v1/peers')
      return peers.find(p => p.bootstrap && p.lastErrorCode !== null)
    })
    assert.equal(failed.lastErrorCode, 'WRONG_PEER')
    assert.ok((failed.lastError ?? '').length > 0, 'and words for people')
    const json = await runDm(['status', '--config', b.configPath, '--json'])
    assert.equal(json.code, 4, json.stdout + json.stderr)
    const { health } = JSON.parse(json.stdout) as StatusInfo
    assert.equal(health?.state, 'degraded')
    assert.deepEqual(health?.reasonCodes, ['NO_PEER_CONNECTED'])
    // The table shows the reason with its code.
    const status = await runDm(['status', '--config', b.configPath])
    assert.equal(status.code, 4, status.stdout + status.stderr)
    assert.match(status.stdout, /^health\s+degraded: .*\(NO_PEER_CONNECTED\)$/m)

    // Once the entry is right and the node has a peer, it is healthy again.
    b.setOptions({ bootstrapNodes: [a], bootstrap: [] })
    await b.stop()
    await b.start()
    await waitFor('b connected', async () => (await b.connectedPeers()) > 0)
    const healthy = await runDm(['status', '--config', b.configPath])
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr)
  } finally {
    await c.stop()
  }
})

test('a listen address already in use: one line naming the address and the key, exit 1, nothing left running', async () => {
  const c = new Cluster()
  // Held by this process for the whole test: the port cannot be freed and retaken under us.
  const squatter = net.createServer()
  await new Promise<void>(resolve => squatter.listen(0, '127.0.0.1', resolve))
  const port = (squatter.address() as net.AddressInfo).port
  try {
    const node = new TestNode('squatted', port, c.root, { files: {} })
    assertOneLineError(await runDm(['daemon', '--config', node.configPath]), 1, 'ERR_LISTEN', `/ip4/127.0.0.1/tcp/${port}`, '[network] listen')
    assert.equal(fs.existsSync(path.join(node.dir, 'state', 'daemon.lock')), false, 'the state directory lock was released')
  } finally {
    squatter.close()
    await c.stop()
  }
})

test('dm config check names a state directory the daemon would refuse (writable by others), and the daemon refuses it in one line', async () => {
  const c = new Cluster()
  try {
    const node = new TestNode('open-state', 0, c.root, { files: {} })
    const state = path.join(node.dir, 'state')
    fs.mkdirSync(state)
    fs.chmodSync(state, 0o777)
    const check = await runDm(['config', 'check', '--config', node.configPath])
    assert.equal(check.code, 1, check.stdout + check.stderr)
    assert.ok(check.stderr.includes(state), check.stderr)
    assertOneLineError(await runDm(['daemon', '--config', node.configPath]), 1, 'ERR_STATE_DIR_UNSAFE', state)
    fs.chmodSync(state, 0o750)
    assert.equal((await runDm(['config', 'check', '--config', node.configPath])).code, 0)
  } finally {
    await c.stop()
  }
})
