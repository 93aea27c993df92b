import v8 from 'node:v8'
import vm from 'node:vm'

/*
 * Garbage collection paced by the bytes of content a daemon moves. A transfer
 * allocates its bytes several times over (socket reads, Noise's ciphertext
 * and plaintext, frames) as Buffers whose memory is malloc'ed outside V8's
 * heap: it is freed only when a GC finds the small Buffer objects dead, and
 * the heap fills too slowly to trigger one. So every YOUNG_GC_EVERY_BYTES the
 * young generation is collected (well under a millisecond). Buffers that wait
 * in a stream's window or read-ahead for a few megabytes outlive two of those
 * and are promoted to the old generation, which only a full GC frees: a
 * fetching daemon held 25-40 MiB of them, and glibc's heap kept the high-water
 * mark. So once a large transfer has been received, a full GC runs too if
 * the Buffers alive or awaiting a GC exceed FULL_GC_ABOVE_BYTES: while its
 * commit's fsyncs run on the thread pool, not on the transfer's path (a full
 * GC inside a transfer cost the fetcher 10-70 ms of CPU per 10 MiB).
 */

/** Bytes of transfer between two young-generation collections. */
export const YOUNG_GC_EVERY_BYTES = 1024 * 1024

/** Buffer bytes (live or dead, not yet collected) above which a full GC runs after a large transfer. */
export const FULL_GC_ABOVE_BYTES = 8 * 1024 * 1024

/** V8's gc(): no argument for a full collection. */
type Gc = (options?: { type: 'minor' }) => void

let gc: Gc | undefined | null
let sinceYoung = 0

/** The gc() function without --expose-gc on the command line: the flag is read when a context is made. */
function loadGc (): Gc | null {
  try {
    v8.setFlagsFromString('--expose-gc')
    const fn = vm.runInNewContext('gc') as unknown
    return typeof fn === 'function' ? fn as Gc : null
  } catch {
    return null
  }
}

/** Counts `bytes` of content moved; collects the young generation every YOUNG_GC_EVERY_BYTES. Must not block (under a millisecond). */
export function movedBytes (bytes: number): void {
  sinceYoung += bytes
  if (sinceYoung < YOUNG_GC_EVERY_BYTES) return
  sinceYoung = 0
  if (gc === undefined) gc = loadGc()
  gc?.({ type: 'minor' })
}

/**
 * A large transfer has been received and its commit (fsyncs, on the thread
 * pool) is under way: a full GC runs then, off the transfer's path, if the
 * Buffers alive or awaiting a GC exceed FULL_GC_ABOVE_BYTES.
 */
export function transferReceived (): void {
  setImmediate(() => {
    if (process.memoryUsage().arrayBuffers <= FULL_GC_ABOVE_BYTES) return
    if (gc === undefined) gc = loadGc()
    gc?.()
  })
}
