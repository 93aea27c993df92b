import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { createConnectionGovernor } from '../../src/api/limits.js'

/** A stand-in socket: destroy() emits close, as a real one does. */
function fakeSocket (): Socket & { destroyed: boolean } {
  const s = new EventEmitter() as unknown as Socket & { destroyed: boolean }
  s.destroyed = false
  ;(s as unknown as { destroy: () => void }).destroy = () => { s.destroyed = true; s.emit('close') }
  return s
}

test('at the connection cap the quietest connection is evicted, never one being answered; none left: refused', () => {
  let now = 0
  const g = createConnectionGovernor({ maxConnections: 3, maxBodyBytes: 100, now: () => now })
  const [a, b, c] = [fakeSocket(), fakeSocket(), fakeSocket()]
  for (const s of [a, b, c]) { now++; assert.equal(g.admit(s), true) }
  now++; g.touch(a) // a is now the most recent; b is the quietest
  const d = fakeSocket()
  assert.equal(g.admit(d), true)
  assert.equal(b.destroyed, true)
  assert.equal(a.destroyed || c.destroyed, false)
  for (const s of [a, c, d]) g.answering(s)
  assert.equal(g.admit(fakeSocket()), false, 'every connection is being answered')
  assert.equal(g.connections, 3)
})

test('the body budget evicts the quietest upload, releases per request, and refuses when nothing can go', () => {
  let now = 0
  const g = createConnectionGovernor({ maxConnections: 10, maxBodyBytes: 100, now: () => now })
  const [a, b, c] = [fakeSocket(), fakeSocket(), fakeSocket()]
  for (const s of [a, b, c]) g.admit(s)
  now = 1; assert.equal(g.reserve(a, 60), true)
  now = 2; assert.equal(g.reserve(b, 30), true)
  now = 3; assert.equal(g.reserve(c, 40), true, 'room made by evicting a, the quietest upload')
  assert.equal(a.destroyed, true)
  assert.equal(g.bodyBytes, 70)
  g.answering(b)
  g.answering(c)
  const e = fakeSocket()
  g.admit(e)
  assert.equal(g.reserve(e, 40), false, 'both uploads are being answered: no room')
  g.done(b, true, 30)
  assert.equal(g.bodyBytes, 40)
  assert.equal(g.reserve(e, 40), true)
  // A pipelined GET finishing on c releases nothing of c's upload.
  g.done(c, false, 0)
  assert.equal(g.bodyBytes, 80)
})
