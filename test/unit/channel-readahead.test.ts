import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { READ_AHEAD_BYTES, streamChannel } from '../../src/net/channel.ts'
import { MessageType, PROTOCOL_FETCH, MAX_FRAME_BYTES_BY_PROTOCOL } from '../../src/protocol/messages.ts'
import { frame } from '../helpers/hostile-peer.ts'

/*
 * Yamux grants its sender window as bytes arrive, not as they are read, so
 * the channel itself must stop a sender that outpaces its reader (a disk
 * slower than the network): it pauses the stream once READ_AHEAD_BYTES wait
 * unread, and resumes it once half of them were read.
 */

/** A fake stream: the test pushes bytes; pause() and resume() are recorded, and paused it delivers nothing. */
function fakeStream (): { stream: Stream, deliver: (bytes: Uint8Array) => void, paused: () => boolean, pauses: () => number, pulled: () => number, pulledAtResume: () => number } {
  const queue: Uint8Array[] = []
  let pulled = 0
  let pulledAtResume = 0
  let wake: (() => void) | undefined
  let paused = false
  let pauses = 0
  const stream = {
    [Symbol.asyncIterator]: () => ({
      async next (): Promise<IteratorResult<Uint8Array>> {
        // As libp2p: a paused stream delivers nothing (what arrives waits in its own buffer).
        while (queue.length === 0 || paused) await new Promise<void>(resolve => { wake = resolve })
        const value = queue.shift() as Uint8Array
        pulled += value.length
        return { done: false, value }
      }
    }),
    pause: () => { paused = true; pauses++ },
    resume: () => { paused = false; pulledAtResume = pulled; const w = wake; wake = undefined; w?.() },
    send: () => true,
    close: async () => {},
    abort: () => {}
  }
  return {
    stream: stream as unknown as Stream,
    deliver: bytes => { queue.push(bytes); const w = wake; wake = undefined; w?.() },
    paused: () => paused,
    pauses: () => pauses,
    pulled: () => pulled,
    pulledAtResume: () => pulledAtResume
  }
}

const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve)) }

test('a stream is paused once a read-ahead of unread frames piles up, and resumed once half of it was read', async () => {
  const s = fakeStream()
  const ch = streamChannel(s.stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES_BY_PROTOCOL[PROTOCOL_FETCH], frameTimeoutMs: 10_000, readAheadBytes: READ_AHEAD_BYTES })
  const chunk = new Uint8Array(256 * 1024)
  const oneFrame = frame(Buffer.concat([Uint8Array.of(MessageType.Chunk), chunk]))
  const frames = Math.ceil((READ_AHEAD_BYTES * 2) / oneFrame.length)
  // Delivered in network-sized pieces, nothing read yet.
  for (let i = 0; i < frames; i++) for (let at = 0; at < oneFrame.length; at += 64 * 1024) s.deliver(oneFrame.subarray(at, at + 64 * 1024))
  await settle()
  assert.equal(s.paused(), true, 'paused with more than the read-ahead unread')
  assert.equal(s.pauses(), 1)
  assert.ok(s.pulled() >= READ_AHEAD_BYTES && s.pulled() <= READ_AHEAD_BYTES + 64 * 1024, `${s.pulled()} bytes pulled: the read-ahead, and no more`)

  let read = 0
  while (s.paused()) {
    assert.ok(read < frames, 'resumed before every frame was read')
    assert.equal((await ch.read())?.length, 1 + chunk.length)
    read++
  }
  const unread = s.pulledAtResume() - read * oneFrame.length
  assert.ok(unread < READ_AHEAD_BYTES / 2 && unread >= READ_AHEAD_BYTES / 2 - oneFrame.length, `resumed with ${unread} bytes unread: once under half the read-ahead, not before`)
  // Resumed, it reads ahead again, and every frame arrives.
  for (; read < frames; read++) assert.equal((await ch.read())?.length, 1 + chunk.length)
})

test('bytes a paused stream held back are read even when the peer closes its side meanwhile', async () => {
  // As libp2p: what arrives while paused waits in the stream's own buffer; the
  // peer's close ends the iterator at once; a resume dispatches the held bytes
  // to 'message' listeners (the ended iterator drops them).
  const queue: Uint8Array[] = []
  const held: Uint8Array[] = []
  const listeners = new Set<(evt: Event) => void>()
  let wake: (() => void) | undefined
  let paused = false
  let closed = false
  const poke = (): void => { const w = wake; wake = undefined; w?.() }
  const stream = {
    get remoteWriteStatus () { return closed ? 'closed' : 'writable' },
    get readBufferLength () { return held.reduce((n, b) => n + b.length, 0) },
    [Symbol.asyncIterator]: () => ({
      async next (): Promise<IteratorResult<Uint8Array>> {
        while (queue.length === 0 && !closed) await new Promise<void>(resolve => { wake = resolve })
        return queue.length > 0 ? { done: false, value: queue.shift() as Uint8Array } : { done: true, value: undefined }
      }
    }),
    pause: () => { paused = true },
    resume: () => {
      paused = false
      const data = held.splice(0)
      if (closed) for (const d of data) for (const l of listeners) l(Object.assign(new Event('message'), { data: d }))
      else queue.push(...data)
      poke()
    },
    addEventListener: (type: string, l: (evt: Event) => void) => { if (type === 'message') listeners.add(l) },
    removeEventListener: (type: string, l: (evt: Event) => void) => { if (type === 'message') listeners.delete(l) },
    send: () => true,
    close: async () => {},
    abort: () => {}
  }
  const deliver = (b: Uint8Array): void => { if (paused) held.push(b); else { queue.push(b); poke() } }
  const ch = streamChannel(stream as unknown as Stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES_BY_PROTOCOL[PROTOCOL_FETCH], frameTimeoutMs: 10_000, readAheadBytes: READ_AHEAD_BYTES })
  const chunk = new Uint8Array(256 * 1024)
  const oneFrame = frame(Buffer.concat([Uint8Array.of(MessageType.Chunk), chunk]))
  const frames = Math.ceil((READ_AHEAD_BYTES * 2) / oneFrame.length)
  for (let i = 0; i < frames; i++) {
    for (let at = 0; at < oneFrame.length; at += 64 * 1024) deliver(oneFrame.subarray(at, at + 64 * 1024))
    await settle()
  }
  assert.ok(paused && held.length > 0, 'paused, with bytes held back')
  closed = true
  poke()
  for (let read = 0; read < frames; read++) assert.equal((await ch.read())?.length, 1 + chunk.length, `frame ${read + 1} of ${frames}`)
  assert.equal(await ch.read(), undefined, 'then the end')
})
