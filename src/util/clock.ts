/**
 * Time and randomness are injected, so the sync logic is deterministic under
 * test and a simulator can run it on virtual time.
 */
export interface Clock {
  nowMs: () => number
  /** Runs `fn` once after `ms`; returns a function that cancels it. A pending timer does not keep the process alive. */
  after: (ms: number, fn: () => void) => () => void
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  after (ms, fn) {
    const t = setTimeout(fn, ms)
    t.unref()
    return () => clearTimeout(t)
  }
}

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
