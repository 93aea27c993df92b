import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { LAN_PROFILE } from '../../src/config/tuning.ts'
import { createMembership, type Membership } from '../../src/net/membership.ts'
import type { MeshNode } from '../../src/net/node.ts'
import type { Clock } from '../../src/util/clock.ts'
import { testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * Rotation, on a fake libp2p node and a fake clock: a node at its target
 * swaps one connection for a new one (its degree stays at the target + 1), and
 * rotates less often while nothing changes, until a new member shows up.
 */

const TARGET = 4
const ROTATE_MS = 1000
const ROTATE_MAX_MS = 8000

interface FakeConn { remotePeer: PeerId, direction: 'inbound' | 'outbound', timeline: { open: number } }

/** The part of a libp2p node membership uses: dials always succeed, at once. */
class FakeNode extends EventTarget {
  conns: FakeConn[] = []
  dials: string[] = []
  /** Calls of getConnections(): one per maintain pass at least, so a test can wait for passes. */
  looks = 0
  constructor (readonly peerId: PeerId, readonly clock: Clock, readonly ids: Map<string, PeerId>) { super() }
  getPeers (): PeerId[] { return this.conns.map(c => c.remotePeer) }
  getConnections (): FakeConn[] { this.looks++; return this.conns }
  connect (peer: PeerId, direction: 'inbound' | 'outbound'): void {
    this.conns.push({ remotePeer: peer, direction, timeline: { open: this.clock.nowMs() } })
    this.dispatchEvent(new CustomEvent('connection:open', { detail: { remotePeer: peer, direction } }))
    this.dispatchEvent(new CustomEvent('peer:connect', { detail: peer }))
  }

  async dial (addrs: Array<ReturnType<typeof multiaddr>>): Promise<void> {
    const id = addrs[0].getComponents().at(-1)?.value as string
    this.dials.push(id)
    this.connect(this.ids.get(id) as PeerId, 'outbound')
  }

  async hangUp (peer: PeerId): Promise<void> {
    this.conns = this.conns.filter(c => !c.remotePeer.equals(peer))
    this.dispatchEvent(new CustomEvent('peer:disconnect', { detail: peer }))
  }
}

/** mulberry32: a repeatable random() for membership's choices. */
function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const seed = testSeed()

async function newPeerIds (n: number): Promise<PeerId[]> {
  return await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
}

async function stage (members: number): Promise<{ node: FakeNode, membership: Membership, clock: { now: number } & Clock, peers: PeerId[], pass: () => Promise<void> }> {
  const [self, ...peers] = await newPeerIds(members + 1)
  const clock = { now: 1_000_000, nowMs () { return this.now }, after: () => () => {} }
  const node = new FakeNode(self, clock, new Map(peers.map(p => [p.toString(), p])))
  const addr = (p: PeerId): string => `/ip4/127.0.0.1/tcp/1/p2p/${p.toString()}`
  const membership = createMembership({
    node: node as unknown as MeshNode,
    bootstrap: peers.map(addr),
    tuning: { ...LAN_PROFILE, targetPeers: TARGET, highWaterPeers: 2 * TARGET, pruneGraceMs: 100, rotateIntervalMs: ROTATE_MS, rotateMaxIntervalMs: ROTATE_MAX_MS, maintainIntervalMs: 1 },
    clock,
    random: seededRandom(seed)
  })
  /** Waits until a whole maintain pass has run at the current fake time, and its dials have settled. */
  const pass = async (): Promise<void> => {
    const seen = node.looks
    await waitFor('a maintain pass', () => node.looks >= seen + 2, 5000, 1)
  }
  return { node, membership, clock, peers, pass }
}

test('rotation swaps a connection for a new one: the degree stays at targetPeers + 1', async () => {
  const { node, membership, clock, pass } = await stage(12)
  membership.start()
  try {
    await waitFor('the target reached', () => node.conns.length === TARGET, 5000, 1)
    const rotations = async (n: number): Promise<void> => {
      const goal = node.dials.length + n
      for (let i = 0; i < 400 && node.dials.length < goal; i++) {
        clock.now += ROTATE_MS / 4
        await pass()
      }
      assert.equal(node.dials.length, goal, `${n} rotation dial(s)`)
      await pass()
    }
    await rotations(1)
    assert.equal(node.conns.length, TARGET + 1, 'the first rotation at the target adds one')
    const before = new Set(node.conns.map(c => c.remotePeer.toString()))
    await rotations(1)
    const after = new Set(node.conns.map(c => c.remotePeer.toString()))
    assert.equal(after.size, TARGET + 1, 'one old connection dropped for the new one')
    assert.ok(after.has(node.dials.at(-1) as string), 'the new connection is kept')
    assert.equal([...before].filter(p => !after.has(p)).length, 1, 'exactly one old connection dropped')
  } finally {
    membership.stop()
  }
})

test('a settled mesh rotates less and less often; a new member brings the base interval back', async () => {
  const { node, membership, clock, pass } = await stage(40)
  membership.start()
  try {
    await waitFor('the target reached', () => node.conns.length === TARGET, 5000, 1)
    const rotationsIn = async (ms: number): Promise<number> => {
      const d0 = node.dials.length
      for (const end = clock.now + ms; clock.now < end;) {
        clock.now += ROTATE_MS / 4
        await pass()
      }
      return node.dials.length - d0
    }
    await rotationsIn(4 * ROTATE_MAX_MS) // long enough to reach the longest interval
    const settled = await rotationsIn(4 * ROTATE_MAX_MS)
    // At the longest interval (8 s ± 25 %), 32 s holds 3-6 rotations; at the base interval it would hold about 32.
    assert.ok(settled >= 3 && settled <= 6, `rotations in 32 s once settled: ${settled}`)

    // A member never seen before connects: the mesh is changing, rotation is back at its base interval.
    const [stranger] = await newPeerIds(1)
    node.connect(stranger, 'inbound')
    node.dispatchEvent(new CustomEvent('peer:identify', { detail: { peerId: stranger, listenAddrs: [multiaddr(`/ip4/127.0.0.1/tcp/2/p2p/${stranger.toString()}`)] } }))
    const unsettled = await rotationsIn(2 * ROTATE_MS)
    assert.ok(unsettled >= 1, `a rotation within two base intervals of a new member: ${unsettled}`)
  } finally {
    membership.stop()
  }
})

test('members only heard of in summaries leave a settled mesh at its long interval', async () => {
  const { node, membership, clock, pass } = await stage(40)
  membership.start()
  try {
    await waitFor('the target reached', () => node.conns.length === TARGET, 5000, 1)
    const rotationsIn = async (ms: number, during?: () => void): Promise<number> => {
      const d0 = node.dials.length
      for (const end = clock.now + ms; clock.now < end;) {
        during?.()
        clock.now += ROTATE_MS / 4
        await pass()
      }
      return node.dials.length - d0
    }
    await rotationsIn(4 * ROTATE_MAX_MS)
    // A summary naming a new member every quarter of the base interval, as a
    // fleet's nodes do while they hear of each other: at the base interval
    // this 32 s would hold about 32 rotations.
    const strangers = await newPeerIds(64)
    for (const p of strangers) node.ids.set(p.toString(), p)
    const from = node.conns[0].remotePeer.toString()
    const heard = await rotationsIn(4 * ROTATE_MAX_MS, () => {
      const p = strangers.pop()
      if (p !== undefined) membership.learn([{ id: p.toString(), addrs: [`/ip4/127.0.0.1/tcp/3/p2p/${p.toString()}`] }], from)
    })
    assert.ok(membership.members().length > 40, 'the strangers were learned')
    assert.ok(heard <= 6, `rotations in 32 s while hearing of new members: ${heard}`)
  } finally {
    membership.stop()
  }
})
