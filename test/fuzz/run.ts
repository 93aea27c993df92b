// Long fuzz runs outside the test runner:
//   FUZZ_RUNS=200000 node --import tsx test/fuzz/run.ts
//   FUZZ_SEED=<seed printed by a failure> FUZZ_RUNS=... node --import tsx test/fuzz/run.ts
import { runFuzz } from './decoders.fuzz.ts'

const started = Date.now()
const report = runFuzz()
console.log(`fuzz done: ${report.total} inputs in ${((Date.now() - started) / 1000).toFixed(1)} s`)
