import { sample } from '../util/clock.js'

/*
 * Which connections a node drops, when it must (above the high-water mark, or
 * the old one of a rotation): never one younger than the grace period, first
 * those that never exchanged anything useful (a flood of strangers goes
 * first), then inbound ones, at random within each group.
 */

/** The part of a libp2p connection the choice looks at. */
export interface ConnectionInfo {
  remotePeer: { toString: () => string }
  direction: 'inbound' | 'outbound'
  timeline: { open: number }
}

export interface ShedChoice {
  count: number
  nowMs: number
  graceMs: number
  /** Peers that exchanged something useful. */
  useful: { has: (peer: string) => boolean }
  /** A peer never chosen (the new connection of a rotation). */
  keep?: string
  random: () => number
}

/** Connected peers, one entry each: whether every connection to it is inbound, and when the first opened. */
export function connectionsByPeer (conns: Iterable<ConnectionInfo>): Map<string, { inbound: boolean, openedMs: number }> {
  const byPeer = new Map<string, { inbound: boolean, openedMs: number }>()
  for (const c of conns) {
    const id = c.remotePeer.toString()
    const prev = byPeer.get(id)
    const openedMs = Math.min(prev?.openedMs ?? Infinity, c.timeline.open)
    byPeer.set(id, { inbound: (prev?.inbound ?? true) && c.direction === 'inbound', openedMs })
  }
  return byPeer
}

/** The peers to hang up on: at most `count`, in the order above. */
export function peersToShed (conns: Iterable<ConnectionInfo>, o: ShedChoice): string[] {
  if (o.count <= 0) return []
  const old = [...connectionsByPeer(conns)].filter(([id, c]) => id !== o.keep && o.nowMs - c.openedMs >= o.graceMs)
  const rank = ([id, c]: [string, { inbound: boolean }]): number => (o.useful.has(id) ? 2 : 0) + (c.inbound ? 0 : 1)
  return sample(old, old.length, o.random).sort((a, b) => rank(a) - rank(b)).slice(0, o.count).map(([id]) => id)
}
