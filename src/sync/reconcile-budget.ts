import { FINGERPRINT_BYTES, MAX_RECONCILE_BYTES, RangeMode, encodeReconcile, type Bound, type IndexEntry, type ReconcileRange } from '../protocol/messages.js'

/*
 * What one exchange of reconciliation may cost (docs/PROTOCOL.md 7.4.5): the
 * caps a side enforces on its peer, and the soft size of the messages it
 * builds itself.
 */

export interface ReconcileLimits {
  /** Messages one side accepts in one exchange; a peer that keeps going longer is cut off. @default 64 */
  maxRounds: number
  /** Distinct entries one exchange may teach us (the wants); more is a protocol error. @default 262144 */
  maxLearned: number
  /** Soft size of the messages we send: past it, the rest of the key space is deferred to a later round. @default 512 KiB */
  messageBytes: number
}

export const DEFAULT_RECONCILE_LIMITS: Readonly<ReconcileLimits> = {
  // Honest exchanges take about 2 × log16(size / 64) + 5 messages, plus one per ~512 KiB of entries moved.
  maxRounds: 64,
  maxLearned: 262_144,
  messageBytes: 512 * 1024
}

/** Bytes of a timestamp's age as a varint, for ages up to 139 years. */
const TIMESTAMP_BYTES = 6

/** Rough encoded size of a range (at most, for present-day timestamps), for the soft message budget. */
export function sizeOf (r: ReconcileRange): number {
  const head = 1 + 2 + (r.upper?.length ?? 0)
  const entries = (es: IndexEntry[]): number => {
    // Names are front-coded against the one before: count only the bytes that differ from it.
    let bytes = 2
    let prev = ''
    for (const e of es) {
      let shared = 0
      while (shared < prev.length && prev.charCodeAt(shared) === e.name.charCodeAt(shared)) shared++
      bytes += 2 + Buffer.byteLength(e.name.slice(shared)) + TIMESTAMP_BYTES + 32
      prev = e.name
    }
    return bytes
  }
  switch (r.mode) {
    case RangeMode.Skip: return head
    case RangeMode.Digest: return head + 32
    case RangeMode.Fingerprint: return head + FINGERPRINT_BYTES
    case RangeMode.Hashes: return head + TIMESTAMP_BYTES + 2 + r.hashes.length
    case RangeMode.Reply: return head + entries(r.entries) + 1 + r.request.length
    case RangeMode.PartialReply: return head + entries(r.entries) + 1 + r.request.length + r.claims.length
    case RangeMode.Items: case RangeMode.PartialItems: return head + entries(r.entries)
  }
}

/** Merges adjacent Skips, so a message in sync elsewhere stays short. */
export function compact (ranges: ReconcileRange[]): ReconcileRange[] {
  const merged: ReconcileRange[] = []
  for (const r of ranges) {
    const last = merged[merged.length - 1]
    if (r.mode === RangeMode.Skip && last?.mode === RangeMode.Skip) merged[merged.length - 1] = r
    else merged.push(r)
  }
  return merged
}

/** One Reconcile frame answering a message with bounds `peerBounds`; honest messages stay far below the frame cap, so passing it is a bug here. */
export function encodeFrame (ranges: ReconcileRange[], salt: Uint8Array | undefined, peerBounds: readonly Bound[]): Uint8Array {
  const frame = encodeReconcile({ salt, ranges }, peerBounds)
  if (frame.length > MAX_RECONCILE_BYTES) throw new Error(`internal: reconcile frame of ${frame.length} bytes`)
  return frame
}
