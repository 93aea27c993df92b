import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { DmError } from '../errors.js'
import type { Channel } from '../sync/transport.js'
import { movedBytes } from '../util/transfer-gc.js'

/** Counts frame bytes for metrics. Must not block. */
export type ByteCounter = (direction: 'in' | 'out', n: number) => void

export interface ChannelLimits {
  /** Largest frame accepted, checked before it is buffered. */
  maxFrameBytes: number
  /** How long a peer may take to deliver one whole frame (tuning.frameTimeoutMs): a slow-loris peer loses its stream here. */
  frameTimeoutMs: number
  /**
   * True for long-lived streams (push): the peer may stay silent between
   * frames for as long as it likes, and the clock starts at a frame's first
   * byte. Otherwise the clock starts when a frame is awaited.
   */
  idleBetweenFrames?: boolean
  /**
   * Bytes read ahead of the consumer (bulk streams: fetch), up to which the
   * sender is not held up while the consumer writes to disk; beyond it the
   * stream is paused. 0 (the default): a frame is read only when asked for.
   */
  readAheadBytes?: number
}

/**
 * Wraps a libp2p stream as a Channel: unsigned-varint length-prefixed frames,
 * each at most `maxFrameBytes` and delivered within `frameTimeoutMs`.
 */
export function streamChannel (stream: Stream, peer: string, limits: ChannelLimits, count: ByteCounter = () => {}): Channel {
  const { frameTimeoutMs } = limits
  const frames = frameReader(stream, limits)
  const channel: Channel = {
    peer,
    async send (frame) {
      count('out', frame.length)
      movedBytes(frame.length)
      if (!stream.send(lp.encode.single(frame))) await stream.onDrain({ signal: AbortSignal.timeout(frameTimeoutMs) })
    },
    async read () {
      try {
        const frame = await frames()
        if (frame !== undefined) {
          count('in', frame.byteLength)
          movedBytes(frame.byteLength)
        }
        return frame
      } catch (err) {
        stream.abort(err as Error)
        throw err
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

/**
 * The read-ahead of bulk streams (fetch). Yamux grants its sender window as
 * bytes arrive, not as they are read, so a receiver slower than its sender
 * (a disk slower than loopback) would pile up whatever the sender can send;
 * beyond this the stream is paused: the muxer grants no more window, and a
 * stream holds at most this plus one window.
 */
export const READ_AHEAD_BYTES = 1024 * 1024

/**
 * Reads length-prefixed frames from a stream. The length is checked against
 * the limit before the body is buffered; a frame must complete within the
 * frame time-out, counted from its first byte (idle streams) or from the read.
 * Bytes are pulled while the consumer waits, or up to the read-ahead; past
 * the larger of the read-ahead and one frame, the stream is paused.
 */
function frameReader (stream: Stream, limits: ChannelLimits): () => Promise<Uint8Array | undefined> {
  const source = stream[Symbol.asyncIterator]()
  const buf = new Uint8ArrayList()
  const readAhead = limits.readAheadBytes ?? 0
  const pauseAt = Math.max(readAhead, limits.maxFrameBytes)
  let ended = false
  let failed: unknown
  let paused = false
  let pulling = false
  let wake: (() => void) | undefined
  const notify = (): void => { const w = wake; wake = undefined; w?.() }

  /** Pauses or resumes the stream; a stream already closing cannot be, and needs not be. */
  function setPaused (p: boolean): void {
    if (paused === p) return
    // libp2p ends a stream's iterator as soon as the peer closes its side, and
    // drops what a paused stream held back if it is dispatched after that:
    // once the peer has closed, those bytes are taken here (resume dispatches them at once).
    const take = (evt: Event): void => {
      appendAll(buf, (evt as Event & { data: Uint8Array | Uint8ArrayList }).data)
    }
    const closed = !p && stream.remoteWriteStatus === 'closed'
    if (closed) stream.addEventListener('message', take)
    try {
      if (p) stream.pause()
      else stream.resume()
      paused = p
    } catch {
    } finally {
      if (closed) stream.removeEventListener('message', take)
    }
  }

  /** Pulls from the stream while the consumer waits or the read-ahead has room; one pull loop at a time. */
  async function pull (): Promise<void> {
    if (pulling || ended) return
    pulling = true
    try {
      while (!ended && (wake !== undefined || buf.byteLength < readAhead)) {
        const r = await source.next()
        if (r.done === true) {
          ended = true
          setPaused(false)
        } else {
          appendAll(buf, r.value)
        }
        if (buf.byteLength >= pauseAt) setPaused(true)
        notify()
      }
    } catch (err) {
      failed = err
      ended = true
      notify()
    } finally {
      pulling = false
    }
  }

  /** Waits for more bytes (resuming the stream: they are needed now), or the deadline. */
  async function more (deadline: number | undefined): Promise<void> {
    setPaused(false)
    let timer: NodeJS.Timeout | undefined
    const arrived = new Promise<void>(resolve => { wake = resolve })
    void pull()
    const timeout = deadline === undefined
      ? undefined
      : new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new DmError('ERR_TIMEOUT', `no complete frame within ${limits.frameTimeoutMs} ms`)), Math.max(0, deadline - Date.now()))
      })
    try {
      await (timeout === undefined ? arrived : Promise.race([arrived, timeout]))
    } finally {
      clearTimeout(timer)
      wake = undefined
    }
  }

  if (readAhead > 0) void pull()
  return async () => {
    let deadline = limits.idleBetweenFrames === true ? undefined : Date.now() + limits.frameTimeoutMs
    for (;;) {
      const frame = takeFrame(buf, limits.maxFrameBytes)
      if (frame !== undefined) {
        // Half drained: let the sender go on while the rest is consumed.
        if (buf.byteLength < pauseAt / 2) setPaused(false)
        if (readAhead > 0) void pull()
        return frame
      }
      if (failed !== undefined) throw failed
      if (ended) {
        if (buf.length > 0) throw new DmError('ERR_DECODE', 'stream ended in the middle of a frame')
        return undefined
      }
      if (deadline === undefined && buf.length > 0) deadline = Date.now() + limits.frameTimeoutMs
      await more(deadline)
    }
  }
}

/**
 * Appends what a stream delivered without copying it: a paused stream hands
 * over everything it held as one list (up to a window, megabytes), which
 * `subarray()` would copy into one buffer kept whole until its last frame is consumed.
 */
function appendAll (buf: Uint8ArrayList, data: Uint8Array | Iterable<Uint8Array>): void {
  if (data instanceof Uint8Array) buf.append(data)
  else for (const part of data) buf.append(part)
}

/** Removes and returns one whole frame from the front of `buf`, if it holds one; throws on an oversized length. */
function takeFrame (buf: Uint8ArrayList, maxFrameBytes: number): Uint8Array | undefined {
  let length = 0
  let i = 0
  for (;; i++) {
    if (i >= buf.length) return undefined
    if (i >= 5) throw new DmError('ERR_DECODE', 'frame length is not a valid varint')
    const b = buf.get(i)
    length += (b & 0x7f) * 2 ** (7 * i)
    if ((b & 0x80) === 0) break
  }
  if (length > maxFrameBytes) throw new DmError('ERR_DECODE', `frame of ${length} bytes exceeds the limit of ${maxFrameBytes}`)
  const start = i + 1
  if (buf.length < start + length) return undefined
  const frame = buf.subarray(start, start + length)
  buf.consume(start + length)
  return frame
}
