import type { Channel, ChannelHandler, Transport } from '../../src/sync/transport.ts'

/*
 * An in-memory network for unit tests of the sync engine: each Transport is a
 * node, open() creates a pair of connected channels. No sockets, no libp2p.
 */

class Pipe {
  private readonly frames: Array<Uint8Array | undefined> = []
  private waiter: ((v: Uint8Array | undefined) => void) | undefined
  private failed: Error | undefined

  push (frame: Uint8Array | undefined): void {
    if (this.waiter !== undefined) { const w = this.waiter; this.waiter = undefined; w(frame) } else this.frames.push(frame)
  }

  fail (err: Error): void { this.failed = err; this.push(undefined) }

  async read (): Promise<Uint8Array | undefined> {
    if (this.failed !== undefined) throw this.failed
    if (this.frames.length > 0) return this.frames.shift()
    return await new Promise(resolve => { this.waiter = resolve })
  }
}

function channelPair (a: string, b: string): [Channel, Channel] {
  const ab = new Pipe()
  const ba = new Pipe()
  const make = (peer: string, inbox: Pipe, outbox: Pipe): Channel => ({
    peer,
    send: async frame => { outbox.push(new Uint8Array(frame)) },
    read: async () => await inbox.read(),
    close: async () => { outbox.push(undefined) },
    abort: err => { outbox.fail(err); inbox.fail(err) }
  })
  // The channel held by a talks to b, and vice versa.
  return [make(b, ba, ab), make(a, ab, ba)]
}

export class MemoryNetwork {
  private readonly handlers = new Map<string, Map<string, ChannelHandler>>()
  private readonly links = new Set<string>()
  private readonly peerListeners = new Map<string, Array<(peer: string, connected: boolean) => void>>()

  transport (id: string): Transport {
    this.handlers.set(id, new Map())
    return {
      connectedPeers: () => [...this.links].filter(l => l.startsWith(id + '|')).map(l => l.split('|')[1]),
      open: async (peer, protocol) => {
        if (!this.links.has(`${id}|${peer}`)) throw new Error(`${id} is not connected to ${peer}`)
        const handler = this.handlers.get(peer)?.get(protocol)
        if (handler === undefined) throw new Error(`${peer} does not handle ${protocol}`)
        const [mine, theirs] = channelPair(id, peer)
        void handler(theirs)
        return mine
      },
      handle: async (protocol, handler) => { this.handlers.get(id)?.set(protocol, handler) },
      onPeer: listener => { this.peerListeners.set(id, [...(this.peerListeners.get(id) ?? []), listener]) }
    }
  }

  connect (a: string, b: string): void {
    this.links.add(`${a}|${b}`)
    this.links.add(`${b}|${a}`)
    this.notify(a, b, true)
  }

  disconnect (a: string, b: string): void {
    this.links.delete(`${a}|${b}`)
    this.links.delete(`${b}|${a}`)
    this.notify(a, b, false)
  }

  private notify (a: string, b: string, connected: boolean): void {
    for (const l of this.peerListeners.get(a) ?? []) l(b, connected)
    for (const l of this.peerListeners.get(b) ?? []) l(a, connected)
  }
}
