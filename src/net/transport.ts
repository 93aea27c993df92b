import { peerIdFromString } from '@libp2p/peer-id'
import type { Channel, Transport } from '../sync/transport.js'
import type { MeshNode } from './node.js'
import { streamChannel, FRAME_TIMEOUT_MS, type ByteCounter } from './channel.js'

/** Streams per protocol per connection; a peer opening more is refused by libp2p. */
const MAX_INBOUND_STREAMS = 32

/** The sync Transport over a libp2p node. */
export function libp2pTransport (node: MeshNode, count?: ByteCounter): Transport {
  return {
    connectedPeers: () => node.getPeers().map(p => p.toString()),
    async open (peer, protocol): Promise<Channel> {
      const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal: AbortSignal.timeout(FRAME_TIMEOUT_MS) })
      return streamChannel(stream, peer, count)
    },
    async handle (protocol, handler) {
      await node.handle(protocol, (stream, connection) => {
        void handler(streamChannel(stream, connection.remotePeer.toString(), count))
      }, { maxInboundStreams: MAX_INBOUND_STREAMS })
    }
  }
}
