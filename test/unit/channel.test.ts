import { test, mock, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { streamChannel } from '../../src/net/channel.ts'
import { DmError } from '../../src/errors.ts'
import { MAX_FRAME_BYTES } from '../../src/protocol/messages.ts'
import { frame, varint } from '../helpers/hostile-peer.ts'

/*
 * The stream bounds every protocol relies on (src/net/channel.ts), on a fake
 * stream with a fake clock: the frame timeout to the millisecond, whatever the
 * machine's load. The real daemons (hostile-slow.test.ts, hostile-input.test.ts)
 * show the same bounds end to end, with deadlines a loaded machine can meet.
 */

const TIMEOUT_MS = 2000

/** The parts of a libp2p Stream the channel uses: bytes pushed by the test, abort recorded. */
function fakeStream (): { stream: Stream, deliver: (bytes: Uint8Array) => void, end: () => void, aborted: () => Error | undefined } {
  const queue: Array<Uint8Array | undefined> = []
  let wake: (() => void) | undefined
  let abortedWith: Error | undefined
  const stream = {
    [Symbol.asyncIterator]: () => ({
      async next (): Promise<IteratorResult<Uint8Array>> {
        while (queue.length === 0) await new Promise<void>(resolve => { wake = resolve })
        const v = queue.shift()
        return v === undefined ? { done: true, value: undefined } : { done: false, value: v }
      }
    }),
    send: () => true,
    close: async () => {},
    abort: (err: Error) => { abortedWith ??= err }
  }
  const push = (v: Uint8Array | undefined): void => { queue.push(v); const w = wake; wake = undefined; w?.() }
  return { stream: stream as unknown as Stream, deliver: bytes => push(bytes), end: () => push(undefined), aborted: () => abortedWith }
}

/** Lets pending promise callbacks run (the fake clock does not mock setImmediate). */
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve)) }

/** A read's outcome so far: 'pending', or the frame, or the error code. */
function track (p: Promise<Uint8Array | undefined>): () => string {
  let state = 'pending'
  p.then(f => { state = f === undefined ? 'end' : `frame ${f.length}` }, err => { state = err instanceof DmError ? err.code : `other: ${String(err)}` })
  return () => state
}

afterEach(() => mock.timers.reset())

test('a frame must arrive whole within the frame timeout of the read: a byte-a-second sender is cut at the timeout, not a millisecond before', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] })
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS })
  const read = track(ch.read())
  s.deliver(varint(1000))
  for (let t = 0; t < TIMEOUT_MS - 1; t += 1000) {
    mock.timers.tick(Math.min(1000, TIMEOUT_MS - 1 - t))
    s.deliver(Uint8Array.of(7))
    await settle()
  }
  assert.equal(read(), 'pending', 'still within the frame timeout')
  assert.equal(s.aborted(), undefined)
  mock.timers.tick(1)
  await settle()
  assert.equal(read(), 'ERR_TIMEOUT')
  assert.equal((s.aborted() as DmError).code, 'ERR_TIMEOUT', 'the stream is reset')
})

test('a long-lived (push) stream may idle between frames for hours; the clock starts at a frame\'s first byte', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] })
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS, idleBetweenFrames: true })
  s.deliver(frame(Uint8Array.of(1, 2, 3)))
  assert.deepEqual(await ch.read(), Uint8Array.of(1, 2, 3))
  const read = track(ch.read())
  mock.timers.tick(3_600_000)
  await settle()
  assert.equal(read(), 'pending', 'an idle push stream is not cut')
  s.deliver(varint(10))
  s.deliver(Uint8Array.of(1))
  await settle()
  mock.timers.tick(TIMEOUT_MS - 1)
  await settle()
  assert.equal(read(), 'pending')
  mock.timers.tick(1)
  await settle()
  assert.equal(read(), 'ERR_TIMEOUT', 'a frame started must finish within the timeout')
})

test('a length prefix over the limit, or no valid varint, is refused as soon as it is read, before any body is buffered', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] })
  for (const prefix of [varint(5e9), varint(MAX_FRAME_BYTES + 1), new Uint8Array(16).fill(0xff)]) {
    const s = fakeStream()
    const read = track(streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS }).read())
    s.deliver(prefix)
    await settle()
    assert.equal(read(), 'ERR_DECODE', `prefix ${Buffer.from(prefix).toString('hex')}`)
    assert.equal((s.aborted() as DmError).code, 'ERR_DECODE')
  }
  // The limit itself is allowed: a frame of exactly maxFrameBytes arrives.
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: 1000, frameTimeoutMs: TIMEOUT_MS })
  s.deliver(frame(new Uint8Array(1000)))
  assert.equal((await ch.read())?.length, 1000)
})

test('the end of the stream inside a frame is ERR_DECODE; at a frame boundary it is the end', async () => {
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS })
  s.deliver(frame(Uint8Array.of(9)))
  s.deliver(varint(100))
  s.deliver(new Uint8Array(10))
  s.end()
  assert.deepEqual(await ch.read(), Uint8Array.of(9))
  await assert.rejects(ch.read(), (err: unknown) => err instanceof DmError && err.code === 'ERR_DECODE')
  const clean = fakeStream()
  const ch2 = streamChannel(clean.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS })
  clean.deliver(frame(Uint8Array.of(1)))
  clean.end()
  assert.deepEqual(await ch2.read(), Uint8Array.of(1))
  assert.equal(await ch2.read(), undefined)
})

test('bytes after the last message reset the stream on close (ERR_DECODE): nothing unread piles up', async () => {
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES, frameTimeoutMs: TIMEOUT_MS })
  s.deliver(frame(Uint8Array.of(1)))
  s.end()
  await assert.rejects(ch.close(), (err: unknown) => err instanceof DmError && err.code === 'ERR_DECODE')
  assert.equal((s.aborted() as DmError).code, 'ERR_DECODE')
})
