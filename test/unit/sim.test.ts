import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Scheduler } from '../../src/sim/scheduler.ts'
import { DEFAULT_OPTIONS, simulate, type SimOptions } from '../../src/sim/simulate.ts'

// The simulator runs the real sync services on virtual time; these runs take well under a second each.

const small: SimOptions = { ...DEFAULT_OPTIONS, nodes: 50, publishes: 1, gapMs: 1000, horizonMs: 60_000 }

test('the scheduler runs events in time order and lets awaited work finish between them', async () => {
  const s = new Scheduler(0)
  const seen: string[] = []
  s.after(20, () => { seen.push('b@20') })
  s.after(10, () => {
    seen.push('a@10')
    // An async chain started by an event completes before the next event runs.
    void (async () => { await Promise.resolve(); await Promise.resolve(); seen.push(`a-continued@${s.elapsedMs}`) })()
  })
  const cancel = s.after(15, () => { seen.push('cancelled') })
  cancel()
  await s.run(100)
  assert.deepEqual(seen, ['a@10', 'a-continued@10', 'b@20'])
  assert.equal(s.elapsedMs, 100)
})

test('a publish reaches every one of 50 nodes through the real services, and a seed replays the run exactly', async () => {
  const opts: SimOptions = { ...small, link: { ...small.link, loss: 0.02 } }
  const { report } = await simulate(opts)
  const [p] = report.publishes
  assert.equal(p.reached, 50)
  assert.notEqual(p.t100, null)
  assert.ok((p.t50 as number) <= (p.t100 as number))
  // Each node pushes to at most pushFanout peers, so most copies are duplicates, refused before any signature check.
  assert.ok(p.duplicates > 0 && p.perNode.frames <= report.tuning.pushFanout + 1)
  assert.deepEqual((await simulate(opts)).report, report)
  assert.notDeepEqual((await simulate({ ...opts, seed: opts.seed + 1 })).report.publishes, report.publishes)
})

test('nodes away at a publish catch up after they come back', async () => {
  const { report } = await simulate({ ...small, nodes: 30, churn: 0.2, awayMs: 3000 })
  const [p] = report.publishes
  assert.ok(p.catchUp !== undefined && p.catchUp.away > 0, 'some nodes were away')
  assert.equal(p.catchUp.caughtUp, p.catchUp.away)
})
