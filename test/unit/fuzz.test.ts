import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runFuzz, runsFromEnv } from '../fuzz/decoders.fuzz.ts'

// The decoder fuzz at CI size (FUZZ_RUNS, default 2000 per property). For long
// runs: FUZZ_RUNS=200000 node --import tsx test/fuzz/run.ts
test('decoders of untrusted input throw only DmError and never yield an invalid accepted version (fuzz)', t => {
  const runs = runsFromEnv()
  const report = runFuzz(runs, line => t.diagnostic(line))
  assert.equal(report.total, runs * Object.keys(report.counts).length)
})
