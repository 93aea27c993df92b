import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LAN_PROFILE, LOCAL_PROFILE, PROFILES, assertTuning, tuningFor, tuningProblems } from '../../src/config/tuning.ts'

test('every shipped profile keeps every relation between knobs', () => {
  for (const [name, t] of Object.entries(PROFILES)) assert.deepEqual(tuningProblems(t), [], name)
})

test('a table that breaks a relation is refused, naming it', () => {
  const cases: Array<[Partial<typeof LAN_PROFILE>, RegExp]> = [
    [{ dialTimeoutMs: LAN_PROFILE.frameTimeoutMs + 1 }, /dialTimeoutMs/],
    [{ redialBaseMs: LAN_PROFILE.redialMaxMs + 1 }, /redialBaseMs/],
    [{ targetPeers: 40 }, /highWaterPeers must be at least targetPeers/],
    [{ maxConnections: 20 }, /maxConnections must be at least twice highWaterPeers/],
    [{ maxFetchesPerPeer: 5 }, /maxFetchesPerPeer/],
    [{ expirySweepMs: 0 }, /expirySweepMs must be a positive number/]
  ]
  for (const [patch, re] of cases) {
    const t = { ...LAN_PROFILE, ...patch }
    assert.ok(tuningProblems(t).some(p => re.test(p)), `${JSON.stringify(patch)}: ${tuningProblems(t).join('; ')}`)
    assert.throws(() => assertTuning(t), re)
  }
})

test('the TOML overrides apply on top of a profile, and derived knobs follow them', () => {
  const t = tuningFor('local', { targetPeers: 20, pushPullIntervalMs: 400 })
  assert.equal(t.frameTimeoutMs, LOCAL_PROFILE.frameTimeoutMs)
  assert.equal(t.targetPeers, 20)
  assert.equal(t.highWaterPeers, 40)
  assert.equal(t.maxConnections, 20 * 8 + 32)
  assert.ok(t.maintainIntervalMs < t.pushPullIntervalMs)
  assert.deepEqual(tuningProblems(t), [])
  assert.deepEqual(tuningFor('lan', {}), { ...LAN_PROFILE })
  // The back-off bound keeps its ratio to the interval; the first wave of a push stays within the fanout.
  assert.equal(t.pushPullMaxIntervalMs, 400 * LOCAL_PROFILE.pushPullMaxIntervalMs / LOCAL_PROFILE.pushPullIntervalMs)
  const narrow = tuningFor('lan', { pushFanout: 2 })
  assert.equal(narrow.pushEagerFanout, 2)
  assert.deepEqual(tuningProblems(narrow), [])
})
