import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { TestNode } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { HostilePeer } from '../helpers/hostile-peer.ts'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import {
  SKEW_MS, c, nextTs, files, useHostileStage, victim
} from '../helpers/hostile-stage.ts'

/*
 * Resources a peer may try to exhaust on a real daemon: the member table, connection slots.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage({ pair: false })

// ---------------------------------------------------------------------------
// Membership

test('a peer cannot fill the member table with strangers and crowd out honest newcomers', async () => {
  const { node, peer } = await victim()
  let newcomer: TestNode | undefined
  try {
    // Four times what one peer may introduce: the rest is ignored, so no peer can fill the table (maxKnownMembers) alone.
    const cap = LOCAL_PROFILE.maxIntroducedPerPeer
    const ids = await Promise.all(Array.from({ length: 4 * cap }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    for (let i = 0; i < ids.length; i += 32) {
      await peer.pushPull(node.peerId, [], { peers: ids.slice(i, i + 32).map(id => ({ id, addrs: ['/ip4/192.0.2.1/tcp/7946'] })) })
    }
    const status = await node.api<{ peersKnown: number }>('/v1/status')
    // The attacker itself is known first-hand, beside the members it introduced.
    assert.ok(status.peersKnown >= cap && status.peersKnown <= cap + 1, `${status.peersKnown} members known after ${ids.length} introduced by one peer: at most ${cap} taken`)
    newcomer = await c.add({ files: files(), maxClockSkewMs: SKEW_MS, bootstrap: [node.addr] })
    await newcomer.start()
    await waitFor('newcomer connected', async () => ((await newcomer?.connectedPeers()) ?? 0) > 0)
    await waitFor('the victim remembers the newcomer', async () => {
      const peers = await node.api<Array<{ id: string, addrs: string[] }>>('/v1/peers')
      return peers.some(p => p.id === newcomer?.peerId && p.addrs.length > 0)
    }, 5000)
  } finally {
    await newcomer?.stop()
    await peer.stop()
    await node.stop()
  }
})

// ---------------------------------------------------------------------------
// Connection slots

test('a flood of strangers that exchange nothing does not lock a newcomer out; the strangers are shed first', async t => {
  const node = await c.add({ files: files(), maxClockSkewMs: SKEW_MS, bootstrap: [] })
  await node.start()
  // More strangers than the daemon has connection slots, each its own libp2p identity on the right network.
  const strangers = await Promise.all(Array.from({ length: LOCAL_PROFILE.maxConnections + 4 }, async () => await HostilePeer.start()))
  let newcomer: TestNode | undefined
  try {
    const dialled = await Promise.allSettled(strangers.map(async s => await s.connect(node.addr)))
    const held = dialled.filter(r => r.status === 'fulfilled').length
    // Anti-entropy every second: the node's pushes may all go to strangers, so the version may come by a round.
    newcomer = await c.add({ files: files(), maxClockSkewMs: SKEW_MS, bootstrap: [node.addr], pushPullIntervalMs: 1000 })
    const joinStarted = Date.now()
    await newcomer.start()
    await waitFor('the newcomer connected through the flooded node', async () => ((await newcomer?.connectedPeers()) ?? 0) > 0, 30_000, 100)
    const joinMs = Date.now() - joinStarted
    // Shedding brings the node down to its high-water mark, and the newcomer, which did a join round, is kept.
    await waitFor('the flooded node sheds to its high-water mark', async () => (await node.connectedPeers()) <= LOCAL_PROFILE.highWaterPeers, 30_000, 250)
    const peers = await node.api<Array<{ id: string, connected: boolean }>>('/v1/peers')
    assert.ok(peers.some(p => p.id === newcomer?.peerId && p.connected), 'the newcomer is still connected after shedding')
    const content = Buffer.from(`after the flood ${randomBytes(4).toString('hex')}`)
    await node.submit(c.sign('hello.txt', content, nextTs()), content)
    await waitFor('the newcomer gets a version through the flooded node', () => newcomer?.file('hello.txt')?.equals(content) === true)
    t.diagnostic(`${held} of ${strangers.length} strangers connected; the newcomer joined in ${joinMs} ms`)
  } finally {
    await newcomer?.stop()
    await Promise.all(strangers.map(async s => await s.stop()))
    await node.stop()
  }
})
