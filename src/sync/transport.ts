import type { PeerInfo } from '../protocol/messages.js'

/*
 * The seam between the sync logic and the network. The sync engine speaks
 * only this interface; net/transport.ts implements it over libp2p
 * streams, and tests can implement it in memory.
 */

/** A framed, bidirectional channel to one peer (one libp2p stream). */
export interface Channel {
  /** The remote peer's id. */
  readonly peer: string
  /** Sends one frame; waits while the peer applies backpressure. */
  send: (frame: Uint8Array) => Promise<void>
  /**
   * The next frame, or undefined once the peer has closed its side. Rejects
   * when a frame exceeds the transport's limit or the channel times out.
   */
  read: () => Promise<Uint8Array | undefined>
  /** Closes our side gracefully (the peer reads end-of-stream). */
  close: () => Promise<void>
  /** Drops the channel at once. */
  abort: (err: Error) => void
}

export type ChannelHandler = (channel: Channel) => Promise<void>

export interface Transport {
  /** Ids of the peers we are connected to right now. */
  connectedPeers: () => string[]
  /** Opens a channel for `protocol` to a connected or dialable peer. */
  open: (peer: string, protocol: string) => Promise<Channel>
  /** Serves `protocol`; the handler owns the channel and must close or abort it. */
  handle: (protocol: string, handler: ChannelHandler) => Promise<void>
  /** Calls `listener` when a peer connects (true) or its last connection closes (false). The listener must not block. */
  onPeer: (listener: (peer: string, connected: boolean) => void) => void
}

/** Membership as the sync services see it: who to tell about, what we heard, who joined. */
export interface PeerExchange {
  /** Up to n known members to tell a peer about. Must not block. */
  sample: (n: number) => PeerInfo[]
  /** Members a peer told us about; untrusted, the receiver bounds what it keeps. */
  learn: (peers: PeerInfo[], from: string) => void
  /** True while this node knows too few members to choose its connections from: rounds then swap members too. */
  wantsIntroductions: () => boolean
  /** Calls `listener` with each peer we open a connection to (a join or rejoin). The listener must not block. */
  onJoin: (listener: (peer: string) => void) => void
}
