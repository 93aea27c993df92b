/**
 * Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`.
 * The pause between polls starts at `everyMs` and doubles up to 100 ms (or `everyMs`, if larger):
 * a condition that holds soon is seen soon, and a long wait does not poll a daemon's API 40 times a second.
 */
export async function waitFor<T> (what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs
  const longest = Math.max(everyMs, 100)
  let pause = everyMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ''}`)
    await new Promise(resolve => setTimeout(resolve, pause))
    pause = Math.min(pause * 2, longest)
  }
}
