import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { Uint8ArrayList } from 'uint8arraylist'
import { sendWindowUpdatesAtHalf } from '../../src/net/yamux-window.ts'

/*
 * One yamux stream on its own, fed data frames as its muxer would, with the
 * frames it sends back recorded: window updates go out once less than half
 * of the receive window is left, not after every frame.
 */

// Yamux's wire constants (the spec's; not exported by the package).
const DATA = 0
const WINDOW_UPDATE = 1
const ACK = 2
const WINDOW = 256 * 1024

/** A logger that drops everything (the stream wants one with scopes). */
const quiet: any = new Proxy(() => {}, { get: () => quiet })

function stream (state: StreamState): { s: YamuxStream, sent: Array<{ type: number, flag: number, length: number }> } {
  const sent: Array<{ type: number, flag: number, length: number }> = []
  const s = new YamuxStream({
    id: '1', streamId: 1, state, direction: 'inbound', log: quiet, initialStreamWindowSize: WINDOW, getRTT: () => -1,
    sendFrame: (h: { type: number, flag: number, length: number }) => { sent.push(h); return true }
  } as any)
  return { s, sent }
}

const data = (n: number): any => ({ header: { type: DATA, flag: 0, streamID: 1, length: n }, data: new Uint8ArrayList(new Uint8Array(n)) })

test('an established stream sends a window update once half its receive window is used, not per frame', () => {
  sendWindowUpdatesAtHalf()
  sendWindowUpdatesAtHalf() // idempotent: patching twice must not wrap twice
  const { s, sent } = stream(StreamState.Established)
  const FRAME = 1200
  const belowHalf = Math.floor((WINDOW / 2) / FRAME)
  for (let i = 0; i < belowHalf; i++) s.handleData(data(FRAME))
  assert.deepEqual(sent, [], `${belowHalf} frames of ${FRAME} bytes leave more than half the window: no update`)
  s.handleData(data(FRAME))
  assert.equal(sent.length, 1, 'the frame that crosses half the window is answered')
  assert.equal(sent[0].type, WINDOW_UPDATE)
  assert.equal(sent[0].length, (belowHalf + 1) * FRAME, 'the update restores the whole window')
  // The window is whole again: the next frames start a new half.
  for (let i = 0; i < belowHalf; i++) s.handleData(data(FRAME))
  assert.equal(sent.length, 1)
})

test('the first frame of a stream the remote opened is still acknowledged at once', () => {
  sendWindowUpdatesAtHalf()
  const { s, sent } = stream(StreamState.SYNReceived)
  s.handleData(data(100))
  assert.equal(sent.length, 1)
  assert.equal(sent[0].flag & ACK, ACK)
  assert.equal(s.state, StreamState.Established)
})
