import { peerIdFromString } from '@libp2p/peer-id'
import type { Channel, Transport } from '../sync/transport.js'
import { MAX_FRAME_BYTES, MAX_FRAME_BYTES_BY_PROTOCOL, MAX_INBOUND_STREAMS_BY_PROTOCOL } from '../protocol/messages.js'
import type { MeshNode } from './node.js'
import { streamChannel, FRAME_TIMEOUT_MS, type ByteCounter } from './channel.js'

/** The sync Transport over a libp2p node. */
export function libp2pTransport (node: MeshNode, count?: ByteCounter): Transport {
  return {
    connectedPeers: () => node.getPeers().map(p => p.toString()),
    async open (peer, protocol): Promise<Channel> {
      const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal: AbortSignal.timeout(FRAME_TIMEOUT_MS) })
      return streamChannel(stream, peer, frameLimit(protocol), count)
    },
    async handle (protocol, handler) {
      await node.handle(protocol, (stream, connection) => {
        void handler(streamChannel(stream, connection.remotePeer.toString(), frameLimit(protocol), count))
      }, { maxInboundStreams: MAX_INBOUND_STREAMS_BY_PROTOCOL[protocol] ?? 1 })
    }
  }
}

function frameLimit (protocol: string): number {
  return MAX_FRAME_BYTES_BY_PROTOCOL[protocol] ?? MAX_FRAME_BYTES
}
