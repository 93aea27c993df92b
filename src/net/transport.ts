import { peerIdFromString } from '@libp2p/peer-id'
import type { Channel, Transport } from '../sync/transport.js'
import { DmError } from '../errors.js'
import { LONG_LIVED_PROTOCOLS, MAX_FRAME_BYTES, PROTOCOL_FETCH, MAX_FRAME_BYTES_BY_PROTOCOL, MAX_INBOUND_STREAMS_BY_PROTOCOL } from '../protocol/messages.js'
import type { Admission } from './admission.js'
import type { MeshNode } from './node.js'
import { READ_AHEAD_BYTES, streamChannel, type ByteCounter, type ChannelLimits } from './channel.js'

export interface TransportOptions {
  /** How long a frame, or opening a stream, may take (tuning.frameTimeoutMs). */
  frameTimeoutMs: number
  /** Counts frame bytes for metrics. Must not block. */
  count?: ByteCounter
  /**
   * On a private mesh: only admitted peers are seen, and streams to or from a
   * peer wait for its admission (bounded by the exchange deadline). Absent on
   * an open mesh, where every connected peer counts.
   */
  admission?: Admission
}

/** The sync Transport over a libp2p node. */
export function libp2pTransport (node: MeshNode, opts: TransportOptions): Transport {
  const { admission } = opts
  const limits = (protocol: string): ChannelLimits => ({
    maxFrameBytes: MAX_FRAME_BYTES_BY_PROTOCOL[protocol] ?? MAX_FRAME_BYTES,
    frameTimeoutMs: opts.frameTimeoutMs,
    idleBetweenFrames: LONG_LIVED_PROTOCOLS.has(protocol),
    // Bulk content: the sender is not held up frame by frame while the receiver writes to disk.
    readAheadBytes: protocol === PROTOCOL_FETCH ? READ_AHEAD_BYTES : 0
  })
  const notAdmitted = (peer: string): DmError => new DmError('ERR_NOT_ADMITTED', `${peer} is not admitted to this private mesh`)
  // Kept from events: node.getPeers() decodes every peer's key on each call, and pushes ask per version.
  const connected = new Set(node.getPeers().map(p => p.toString()))
  node.addEventListener('peer:connect', evt => { connected.add(evt.detail.toString()) })
  node.addEventListener('peer:disconnect', evt => { connected.delete(evt.detail.toString()) })
  return {
    connectedPeers: () => admission?.admittedPeers() ?? [...connected],
    async open (peer, protocol): Promise<Channel> {
      const signal = AbortSignal.timeout(opts.frameTimeoutMs)
      if (admission !== undefined && !admission.isAdmitted(peer)) {
        await node.dial(peerIdFromString(peer), { signal })
        if (!await admission.whenAdmitted(peer)) throw notAdmitted(peer)
      }
      const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal })
      return streamChannel(stream, peer, limits(protocol), opts.count)
    },
    async handle (protocol, handler) {
      await node.handle(protocol, (stream, connection) => {
        const peer = connection.remotePeer.toString()
        const deliver = (): void => { void handler(streamChannel(stream, peer, limits(protocol), opts.count)) }
        if (admission === undefined || admission.isAdmitted(peer)) { deliver(); return }
        // The peer's side may finish admitting us first and open a stream at once: it waits, unread.
        void admission.whenAdmitted(peer).then(ok => { if (ok) deliver(); else stream.abort(notAdmitted(peer)) })
      }, { maxInboundStreams: MAX_INBOUND_STREAMS_BY_PROTOCOL[protocol] ?? 1 })
    },
    onPeer (listener) {
      if (admission !== undefined) {
        admission.onChange(listener)
        return
      }
      node.addEventListener('peer:connect', evt => listener(evt.detail.toString(), true))
      node.addEventListener('peer:disconnect', evt => listener(evt.detail.toString(), false))
    }
  }
}
