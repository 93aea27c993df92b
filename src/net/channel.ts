import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { DmError } from '../errors.js'
import type { Channel } from '../sync/transport.js'

/** Counts frame bytes for metrics. Must not block. */
export type ByteCounter = (direction: 'in' | 'out', n: number) => void

export interface ChannelLimits {
  /** Largest frame accepted, checked before it is buffered. */
  maxFrameBytes: number
  /** How long a peer may take to deliver one whole frame (tuning.frameTimeoutMs): a slow-loris peer loses its stream here. */
  frameTimeoutMs: number
}

/**
 * Wraps a libp2p stream as a Channel: unsigned-varint length-prefixed frames,
 * each at most `maxFrameBytes` and delivered within `frameTimeoutMs`.
 */
export function streamChannel (stream: Stream, peer: string, limits: ChannelLimits, count: ByteCounter = () => {}): Channel {
  const { maxFrameBytes, frameTimeoutMs } = limits
  const frames = lp.decode(stream, { maxDataLength: maxFrameBytes })[Symbol.asyncIterator]()
  const channel: Channel = {
    peer,
    async send (frame) {
      count('out', frame.length)
      if (!stream.send(lp.encode.single(frame))) await stream.onDrain({ signal: AbortSignal.timeout(frameTimeoutMs) })
    },
    async read () {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new DmError('ERR_TIMEOUT', `no complete frame within ${frameTimeoutMs} ms`)), frameTimeoutMs)
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
      await stream.close({ signal: AbortSignal.timeout(frameTimeoutMs) })
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
