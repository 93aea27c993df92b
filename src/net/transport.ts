import { peerIdFromString } from '@libp2p/peer-id'
import type { Channel, Transport } from '../sync/transport.js'
import { LONG_LIVED_PROTOCOLS, MAX_FRAME_BYTES, MAX_FRAME_BYTES_BY_PROTOCOL, MAX_INBOUND_STREAMS_BY_PROTOCOL } from '../protocol/messages.js'
import type { MeshNode } from './node.js'
import { streamChannel, type ByteCounter, type ChannelLimits } from './channel.js'

export interface TransportOptions {
  /** How long a frame, or opening a stream, may take (tuning.frameTimeoutMs). */
  frameTimeoutMs: number
  /** Counts frame bytes for metrics. Must not block. */
  count?: ByteCounter
}

/** The sync Transport over a libp2p node. */
export function libp2pTransport (node: MeshNode, opts: TransportOptions): Transport {
  const limits = (protocol: string): ChannelLimits => ({
    maxFrameBytes: MAX_FRAME_BYTES_BY_PROTOCOL[protocol] ?? MAX_FRAME_BYTES,
    frameTimeoutMs: opts.frameTimeoutMs,
    idleBetweenFrames: LONG_LIVED_PROTOCOLS.has(protocol)
  })
  return {
    connectedPeers: () => node.getPeers().map(p => p.toString()),
    async open (peer, protocol): Promise<Channel> {
      const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal: AbortSignal.timeout(opts.frameTimeoutMs) })
      return streamChannel(stream, peer, limits(protocol), opts.count)
    },
    async handle (protocol, handler) {
      await node.handle(protocol, (stream, connection) => {
        void handler(streamChannel(stream, connection.remotePeer.toString(), limits(protocol), opts.count))
      }, { maxInboundStreams: MAX_INBOUND_STREAMS_BY_PROTOCOL[protocol] ?? 1 })
    },
    onPeer (listener) {
      node.addEventListener('peer:connect', evt => listener(evt.detail.toString(), true))
      node.addEventListener('peer:disconnect', evt => listener(evt.detail.toString(), false))
    }
  }
}
