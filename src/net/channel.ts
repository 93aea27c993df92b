import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { DmError } from '../errors.js'
import type { Channel } from '../sync/transport.js'

/**
 * How long a peer may take to deliver one whole frame. A slow-loris peer
 * trickling bytes loses its stream here; honest frames are at most 4 MiB.
 */
export const FRAME_TIMEOUT_MS = 15_000

/** Counts frame bytes for metrics. Must not block. */
export type ByteCounter = (direction: 'in' | 'out', n: number) => void

/**
 * Wraps a libp2p stream as a Channel: unsigned-varint length-prefixed frames,
 * each at most `maxFrameBytes` and delivered within FRAME_TIMEOUT_MS.
 */
export function streamChannel (stream: Stream, peer: string, maxFrameBytes: number, count: ByteCounter = () => {}): Channel {
  const frames = lp.decode(stream, { maxDataLength: maxFrameBytes })[Symbol.asyncIterator]()
  const channel: Channel = {
    peer,
    async send (frame) {
      count('out', frame.length)
      if (!stream.send(lp.encode.single(frame))) await stream.onDrain({ signal: AbortSignal.timeout(FRAME_TIMEOUT_MS) })
    },
    async read () {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new DmError('ERR_DECODE', `no complete frame within ${FRAME_TIMEOUT_MS} ms`)), FRAME_TIMEOUT_MS)
      })
      try {
        const next = await Promise.race([frames.next(), timeout])
        if (next.done === true) return undefined
        count('in', next.value.byteLength)
        return next.value.subarray()
      } catch (err) {
        stream.abort(err as Error)
        throw err
      } finally {
        clearTimeout(timer)
      }
    },
    /**
     * Closes our side, then waits for the peer's end. Anything it still sends is
     * a protocol violation and resets the stream: unread bytes would otherwise
     * pile up in buffers nobody drains.
     */
    async close () {
      await stream.close({ signal: AbortSignal.timeout(FRAME_TIMEOUT_MS) })
      if (await channel.read() !== undefined) {
        const err = new DmError('ERR_DECODE', 'peer sent data after the last message')
        stream.abort(err)
        throw err
      }
    },
    abort (err) {
      stream.abort(err)
    }
  }
  return channel
}
