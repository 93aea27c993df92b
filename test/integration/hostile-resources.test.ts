import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type TestNode } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { HostilePeer, forge, frame, pushBody, varint, watchStream } from '../helpers/hostile-peer.ts'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import { MAX_FRAME_BYTES, PROTOCOL_FETCH, PROTOCOL_PUSH, PROTOCOL_PUSH_PULL } from '../../src/protocol/messages.ts'
import {
  FRAME_TIMEOUT_MS, SKEW_MS, RSS_BOUND_MIB, c, nextTs, files, useHostileStage, rssMiB, rssSampler, assertAlive, victim
} from '../helpers/hostile-stage.ts'

/*
 * Resources a peer may try to exhaust on a real daemon: the member table, stream buffers, connection slots.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage({ pair: false })

// ---------------------------------------------------------------------------
// Membership

test('a peer cannot fill the member table with strangers and crowd out honest newcomers', async () => {
  const { node, peer } = await victim()
  let newcomer: TestNode | undefined
  try {
    const ids = await Promise.all(Array.from({ length: 4096 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    for (let i = 0; i < ids.length; i += 32) {
      await peer.pushPull(node.peerId, [], { peers: ids.slice(i, i + 32).map(id => ({ id, addrs: ['/ip4/192.0.2.1/tcp/7946'] })) })
    }
    const status = await node.api<{ peersKnown: number }>('/v1/status')
    assert.ok(status.peersKnown <= 4096 + 2, `${status.peersKnown} members known: the table is bounded`)
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

test('bytes a peer keeps sending after a complete push frame are not buffered without bound', async t => {
  const { node, peer } = await victim()
  try {
    const s = await peer.openStream(node.peerId, PROTOCOL_PUSH)
    const outcome = watchStream(s, 60_000)
    let ended = false
    s.addEventListener('close', () => { ended = true })
    await peer.write(s, frame(pushBody(forge({ name: 'not-listed.txt', content: Buffer.from('x'), key: c.key }), Buffer.from('x'))))
    const junk = Buffer.alloc(1 << 20, 7)
    const rss = rssSampler(node)
    let sentMiB = 0
    while (!ended && sentMiB < 512 && rssMiB(node) < RSS_BOUND_MIB + 10) {
      try { await peer.write(s, junk) } catch { break }
      sentMiB++
    }
    const peak = rss.stop()
    const how = (await Promise.race([outcome, Promise.resolve(undefined)]))?.how ?? 'open'
    t.diagnostic(`sent ${sentMiB} MiB after the push frame; the daemon ${ended ? 'reset the stream' : `never reset the stream (our view: ${how})`}; peak RSS ${peak.toFixed(0)} MiB`)
    assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB after ${sentMiB} MiB sent`)
    await assertAlive(node)
  } finally {
    await peer.stop()
    await node.stop()
  }
})

test('partial frames on every stream a peer may open cannot exhaust memory', async t => {
  const { node, peer } = await victim()
  const rss = rssSampler(node)
  const part = Buffer.alloc(MAX_FRAME_BYTES - 64, 1)
  try {
    const outcomes = Array.from({ length: 96 }, async (_, i) => {
      const s = await peer.openStream(node.peerId, [PROTOCOL_PUSH, PROTOCOL_FETCH, PROTOCOL_PUSH_PULL][i % 3])
      const o = watchStream(s, FRAME_TIMEOUT_MS + 5000)
      try {
        await peer.write(s, varint(MAX_FRAME_BYTES))
        await peer.write(s, part)
      } catch {}
      return await o
    })
    // Stop as soon as the bound is crossed, or when the daemon has dealt with every stream.
    let all = false
    void Promise.allSettled(outcomes).then(() => { all = true })
    await waitFor('streams dealt with or bound crossed', () => all || rssMiB(node) > RSS_BOUND_MIB + 10, FRAME_TIMEOUT_MS + 10_000, 50)
    const peak = rss.stop()
    t.diagnostic(`96 streams x ${(part.length / 1048576).toFixed(0)} MiB partial frames: peak RSS ${peak.toFixed(0)} MiB`)
    assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB`)
    await assertAlive(node)
  } finally {
    rss.stop()
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
