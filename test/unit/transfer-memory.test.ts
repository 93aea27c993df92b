import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { streamChannel } from '../../src/net/channel.ts'
import { MAX_FRAME_BYTES_BY_PROTOCOL, PROTOCOL_FETCH } from '../../src/protocol/messages.ts'
import { FULL_GC_ABOVE_BYTES } from '../../src/util/transfer-gc.ts'
import { frame } from '../helpers/hostile-peer.ts'

/*
 * What bounds a daemon's memory while 10 MiB versions arrive: no copy of what
 * a paused stream hands over at once, and a full GC once the Buffers that
 * outlived the young generation pile up.
 */

test('frames are read out of what a stream delivered in place, not out of a copy of all of it', async () => {
  // A paused libp2p stream hands over everything it held as one list on resume (megabytes).
  const parts = [frame(new Uint8Array(1000).fill(1)), frame(new Uint8Array(2000).fill(2))]
  let delivered = false
  const stream = {
    [Symbol.asyncIterator]: () => ({
      async next (): Promise<IteratorResult<Uint8ArrayList>> {
        if (delivered) return await new Promise(() => {})
        delivered = true
        return { done: false, value: new Uint8ArrayList(...parts) }
      }
    }),
    pause: () => {},
    resume: () => {},
    send: () => true,
    close: async () => {},
    abort: () => {}
  } as unknown as Stream
  const ch = streamChannel(stream, 'peer', { maxFrameBytes: MAX_FRAME_BYTES_BY_PROTOCOL[PROTOCOL_FETCH], frameTimeoutMs: 5000, readAheadBytes: 1024 * 1024 })
  for (const [i, part] of parts.entries()) {
    const got = await ch.read()
    assert.equal(got?.length, i === 0 ? 1000 : 2000)
    assert.equal(got?.buffer, part.buffer, `frame ${i} is a view of the delivered bytes`)
  }
})

/**
 * The collection scenario, in a process of its own: in the shared test process
 * other tests' garbage makes V8 start full collections by itself, which would
 * free the promoted Buffers whether or not transferReceived() does.
 */
const PROBE = `
const v8 = await import('node:v8')
const vm = await import('node:vm')
const { FULL_GC_ABOVE_BYTES, movedBytes, transferReceived } = await import(${JSON.stringify(path.resolve('src/util/transfer-gc.ts'))})
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
gc()
const base = process.memoryUsage().arrayBuffers
const held = () => process.memoryUsage().arrayBuffers - base
// 3x the bound in 64 KiB Buffers (a socket read's size), alive across two young
// collections, as Buffers waiting in a window or read-ahead are: promoted.
let kept = Array.from({ length: (3 * FULL_GC_ABOVE_BYTES) / 65536 }, () => Buffer.allocUnsafeSlow(65536))
gc({ type: 'minor' })
gc({ type: 'minor' })
kept = undefined
gc({ type: 'minor' })
const afterYoung = held()
// A transfer moves content in frames (young collections only), then ends.
for (let moved = 0; moved < 2 * FULL_GC_ABOVE_BYTES; moved += 256 * 1024) movedBytes(256 * 1024)
await new Promise(resolve => setTimeout(resolve, 50))
const afterMoves = held()
transferReceived()
// V8 releases the memory of dead ArrayBuffers on a background thread, just after the GC.
let afterTransfer = held()
for (let i = 0; i < 200 && afterTransfer >= FULL_GC_ABOVE_BYTES / 2; i++) {
  await new Promise(resolve => setTimeout(resolve, 10))
  afterTransfer = held()
}
console.log(JSON.stringify({ afterYoung, afterMoves, afterTransfer }))
`

test('Buffers promoted past the young generation are freed by a full GC once a large transfer was received', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROBE], { encoding: 'utf8' })
  const { afterYoung, afterMoves, afterTransfer } = JSON.parse(out) as Record<string, number>
  assert.ok(afterYoung >= 2 * FULL_GC_ABOVE_BYTES, `young collections do not free promoted Buffers (${afterYoung} bytes held)`)
  assert.ok(afterMoves >= 2 * FULL_GC_ABOVE_BYTES, `the young collections of the transfer do not free them either (${afterMoves} bytes held)`)
  assert.ok(afterTransfer < FULL_GC_ABOVE_BYTES / 2, `freed once the transfer was received (${afterTransfer} bytes held)`)
})
