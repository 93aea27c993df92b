import type { Clock } from '../util/clock.js'

/*
 * A discrete-event scheduler on virtual time: the Clock the sync services run
 * on in the simulator. No real timers: `after()` puts an event in a heap, and
 * run() takes events in (time, insertion) order. After each event the promise
 * continuations it started (the services' awaits) run to completion before
 * the next event, so async code progresses exactly as it would between two
 * timer callbacks on a real event loop, and the order is the same every run.
 */

interface Event {
  atMs: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/** Resolves on the next macrotask turn, after every microtask queued so far (and those they queue). */
const drainMicrotasks = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

export class Scheduler implements Clock {
  private readonly heap: Event[] = []
  private seq = 0
  private virtualMs = 0
  /** Events run so far (for the report's cost line). */
  events = 0

  /** `epochMs` is what nowMs() reads at virtual time 0 (versions carry wall-clock timestamps). */
  constructor (private readonly epochMs: number) {}

  /** Virtual milliseconds since the start of the run. */
  get elapsedMs (): number { return this.virtualMs }

  /** Whole milliseconds, as Date.now(): versions carry it as an integer timestamp. */
  nowMs = (): number => this.epochMs + Math.floor(this.virtualMs)

  after = (ms: number, fn: () => void): (() => void) => {
    const e: Event = { atMs: this.virtualMs + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(e)
    return () => { e.cancelled = true }
  }

  /** Schedules at an absolute virtual time (clamped to now). */
  at (atMs: number, fn: () => void): () => void {
    return this.after(atMs - this.virtualMs, fn)
  }

  /**
   * Runs events until virtual time `untilMs`, the queue empties, or `done()`
   * holds (checked after each event). Returns the virtual time reached.
   */
  async run (untilMs: number, done: () => boolean = () => false): Promise<number> {
    await drainMicrotasks()
    while (this.heap.length > 0 && !done()) {
      const e = this.heap[0]
      if (e.atMs > untilMs) break
      this.pop()
      if (e.cancelled) continue
      this.virtualMs = e.atMs
      this.events++
      e.fn()
      await drainMicrotasks()
    }
    if (!done() && (this.heap.length === 0 || this.heap[0].atMs > untilMs)) this.virtualMs = Math.max(this.virtualMs, untilMs)
    return this.virtualMs
  }

  // A binary min-heap on (atMs, seq).
  private less (a: Event, b: Event): boolean { return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq) }

  private push (e: Event): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  private pop (): void {
    const h = this.heap
    const last = h.pop() as Event
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && this.less(h[l], h[m])) m = l
      if (r < h.length && this.less(h[r], h[m])) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m], h[i]]
      i = m
    }
  }
}
