/** A seeded PRNG (mulberry32), so a test that picks random moments can be replayed. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The seed for this run: DM_TEST_SEED if set, else a fixed default; printed so a failure can be replayed. */
export function testSeed (): number {
  const seed = Number(process.env.DM_TEST_SEED ?? 20261130)
  process.stdout.write(`# seed ${seed} (set DM_TEST_SEED to replay)\n`)
  return seed
}
