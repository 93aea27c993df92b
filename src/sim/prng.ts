/** A seeded PRNG (mulberry32): the simulator's only source of randomness, so a seed replays a run exactly. */
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

/** An exponentially distributed duration with the given mean. */
export function exponential (random: () => number, meanMs: number): number {
  return -Math.log(1 - random()) * meanMs
}
