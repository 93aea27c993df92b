import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import { Cluster, type TestNode } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * The README's deployment topology at a size where a star breaks: 32 real
 * daemons, all bootstrapping from one address. They all connect, the
 * bootstrap node sheds down to its high-water mark, the mesh is connected
 * without it, and a publish reaches everyone, before and after it dies.
 */

const N = 32

async function graph (nodes: TestNode[]): Promise<Map<string, string[]>> {
  const g = new Map<string, string[]>()
  for (const n of nodes) {
    const peers = await n.api<Array<{ id: string, connected: boolean }>>('/v1/peers')
    g.set(n.peerId, peers.filter(p => p.connected).map(p => p.id))
  }
  return g
}

/** Hops from `from` to every node reachable in `g` (breadth first). */
function hops (g: Map<string, string[]>, from: string): Map<string, number> {
  const dist = new Map([[from, 0]])
  const queue = [from]
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    for (const next of g.get(id) ?? []) {
      if (!dist.has(next) && g.has(next)) { dist.set(next, (dist.get(id) as number) + 1); queue.push(next) }
    }
  }
  return dist
}

test(`${N} daemons through one bootstrap address: all join, the bootstrap sheds to its high-water mark, the mesh outlives it`, async t => {
  const c = new Cluster()
  try {
    const boot = await c.add()
    await boot.start()
    for (let i = 1; i < N; i++) await c.add()
    await Promise.all(c.nodes.slice(1).map(async n => await n.start()))
    const rest = c.nodes.slice(1)
    await waitFor('every daemon has a peer', async () => (await Promise.all(c.nodes.map(async n => await n.connectedPeers()))).every(k => k > 0), 60_000, 250)

    // Settled: the bootstrap node is down to its high-water mark, and the others are connected without it.
    const settled = await waitFor('the mesh settles into a connected graph that does not need the bootstrap node', async () => {
      const g = await graph(c.nodes)
      if ((g.get(boot.peerId)?.length ?? Infinity) > LOCAL_PROFILE.highWaterPeers) return undefined
      const without = new Map([...g].filter(([id]) => id !== boot.peerId).map(([id, ps]) => [id, ps.filter(p => p !== boot.peerId)]))
      return hops(without, rest[0].peerId).size === rest.length ? g : undefined
    }, 60_000, 500)
    const degrees = [...settled.values()].map(ps => ps.length).sort((a, b) => a - b)
    const diameter = Math.max(...c.nodes.map(n => Math.max(...hops(settled, n.peerId).values())))
    t.diagnostic(`degrees ${JSON.stringify(degrees)}; diameter ${diameter}`)
    assert.ok(diameter <= 4, `diameter ${diameter}`)

    const first = Buffer.from('one address was enough')
    await rest[5].submit(c.sign('hello.txt', first), first)
    await c.waitAll('hello.txt', first, c.nodes, 30_000)

    await boot.stop(true)
    const second = Buffer.from('and the mesh outlives it')
    await rest[10].submit(c.sign('hello.txt', second), second)
    await c.waitAll('hello.txt', second, rest, 30_000)
  } finally {
    await c.stop()
  }
})
