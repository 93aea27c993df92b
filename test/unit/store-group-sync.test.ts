import { test } from 'node:test'
import assert from 'node:assert/strict'
import { coalesced } from '../../src/store/held-dir.js'

/*
 * The group commit of directory fsyncs (held-dir.ts coalesced): commits in
 * flight share fsyncs, and none resolves before an fsync that started after
 * its call has finished (its rename is then durable).
 */

/** An injected fsync: each run waits until the test finishes it. */
function gatedSync (): { sync: () => Promise<void>, runs: number, finish: (err?: Error) => Promise<void> } {
  const pending: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  const gate = {
    runs: 0,
    sync: coalesced(async () => {
      gate.runs++
      await new Promise<void>((resolve, reject) => pending.push({ resolve, reject }))
    }),
    /** Finishes the oldest run, then lets the callbacks it triggers run. */
    async finish (err?: Error) {
      const run = pending.shift()
      assert.ok(run !== undefined, 'an fsync is running')
      if (err === undefined) run.resolve()
      else run.reject(err)
      for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
    }
  }
  return gate
}

/** Tracks whether a promise has settled, without awaiting it. */
function track (p: Promise<void>): { done: () => boolean, failed: () => unknown } {
  let done = false
  let failed: unknown
  p.then(() => { done = true }, err => { done = true; failed = err })
  return { done: () => done, failed: () => failed }
}

test('group sync: 20 concurrent callers share 2 fsyncs, not 20', async () => {
  const g = gatedSync()
  const first = track(g.sync())
  const rest = Array.from({ length: 19 }, () => track(g.sync()))
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(g.runs, 1, 'one fsync runs; the others wait for the next')
  await g.finish()
  assert.equal(first.done(), true)
  assert.equal(g.runs, 2, 'one more fsync serves every caller that arrived meanwhile')
  await g.finish()
  assert.ok(rest.every(r => r.done() && r.failed() === undefined))
  assert.equal(g.runs, 2)
})

test('group sync: a call made while an fsync runs does not resolve when that one ends, only after the next', async () => {
  const g = gatedSync()
  const early = track(g.sync())
  await new Promise(resolve => setImmediate(resolve))
  // Its rename happened after the running fsync began: that fsync may not cover it.
  const late = track(g.sync())
  await g.finish()
  assert.equal(early.done(), true)
  assert.equal(late.done(), false, 'not covered by the fsync that was already running')
  await g.finish()
  assert.equal(late.done(), true)
})

test('group sync: a failed fsync rejects the callers it covers; the next call runs a new one', async () => {
  const g = gatedSync()
  const a = track(g.sync())
  const b = track(g.sync())
  await g.finish(Object.assign(new Error('EIO'), { code: 'EIO' }))
  assert.equal((a.failed() as NodeJS.ErrnoException).code, 'EIO')
  assert.equal(b.done(), false, 'the waiting caller is served by the next fsync, not failed by the earlier one')
  await g.finish()
  assert.equal(b.failed(), undefined)
  const c = track(g.sync())
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(g.runs, 3)
  await g.finish()
  assert.equal(c.done(), true)
})
