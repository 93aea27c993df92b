import v8 from 'node:v8'
import vm from 'node:vm'

/*
 * Collects V8's young generation after every YOUNG_GC_EVERY_BYTES of content
 * moved. A transfer allocates its bytes several times over (socket reads,
 * Noise's ciphertext and plaintext, frames) as Buffers whose memory is
 * malloc'ed outside V8's heap: V8 frees it only when a GC finds the small
 * Buffer objects dead, and its heap fills too slowly to trigger one. 4 × 10 MiB
 * at once left 30-40 MiB of such garbage in a daemon. A young-generation GC
 * of a daemon's heap takes well under a millisecond.
 */

/** Bytes of transfer between two young-generation collections. */
export const YOUNG_GC_EVERY_BYTES = 1024 * 1024

type Gc = (options: { type: 'minor' }) => void

let gc: Gc | undefined | null
let sinceLast = 0

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
  sinceLast += bytes
  if (sinceLast < YOUNG_GC_EVERY_BYTES) return
  sinceLast = 0
  if (gc === undefined) gc = loadGc()
  gc?.({ type: 'minor' })
}
