/** Time and randomness are injected, so sync logic is deterministic under test. */
export interface Clock {
  nowMs: () => number
}

export const systemClock: Clock = { nowMs: () => Date.now() }

/** Picks up to n distinct items at random (Fisher-Yates on a copy). */
export function sample<T> (items: readonly T[], n: number, random: () => number = Math.random): T[] {
  const copy = [...items]
  const k = Math.min(n, copy.length)
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (copy.length - i))
    const t = copy[i]; copy[i] = copy[j]; copy[j] = t
  }
  return copy.slice(0, k)
}
