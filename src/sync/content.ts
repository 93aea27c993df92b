import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import type { SignedVersion } from '../format/version.js'
import type { Refusal } from '../policy/accept.js'
import type { StagedContent } from '../store/staged.js'
import { movedBytes, transferReceived } from '../util/transfer-gc.js'

/*
 * Content that arrives as a stream (a publish over the local API): read
 * chunk by chunk into a staged file, or into memory when small, and cut off
 * as soon as it runs past the signed size. The signed size and hash are
 * checked after, by the acceptor.
 */

const EMPTY = new Uint8Array(0)

/**
 * Reads streamed content, refusing it as soon as it runs past the signed
 * size: into `staged`, or into memory when there is none (small content).
 */
export async function receiveContent (v: SignedVersion, content: AsyncIterable<Uint8Array>, staged: StagedContent | undefined): Promise<{ ok: true, bytes: Uint8Array } | Refusal> {
  const parts: Uint8Array[] = []
  let got = 0
  const chunks = content[Symbol.asyncIterator]()
  for (;;) {
    let next: IteratorResult<Uint8Array>
    try {
      next = await chunks.next()
    } catch (err) {
      // The sender went away or broke a limit of its transport: nothing of it is kept.
      return { ok: false, code: err instanceof DmError ? err.code : 'ERR_DECODE', reason: `the content of "${printable(v.name)}" did not arrive: ${describeError(err)}`, retryable: true }
    }
    if (next.done === true) break
    got += next.value.length
    movedBytes(next.value.length)
    if (got > v.size) {
      await chunks.return?.()
      return { ok: false, code: 'ERR_CONTENT_MISMATCH', reason: `"${printable(v.name)}" content runs past the signed ${v.size} bytes`, retryable: false }
    }
    if (staged !== undefined) await staged.write(next.value)
    else parts.push(next.value)
  }
  if (staged === undefined) return { ok: true, bytes: Buffer.concat(parts, got) }
  transferReceived()
  return { ok: true, bytes: EMPTY }
}
