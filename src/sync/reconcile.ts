import { randomBytes } from 'node:crypto'
import { DmError } from '../errors.js'
import {
  MAX_RANGES_PER_MESSAGE, RangeMode, SALT_BYTES, boundsOf, decodeReconcile,
  type Bound, type IndexEntry, type ReconcileRange
} from '../protocol/messages.js'
import type { ReconcileIndex } from './fingerprint.js'
import { DEFAULT_RECONCILE_LIMITS, compact, encodeFrame, sizeOf, type ReconcileLimits } from './reconcile-budget.js'
import { answerHashes, answerItems, answerReply, createLedger } from './reconcile-leaf.js'
import { SPLIT_BUCKETS, describeDiffering, rangeKey } from './reconcile-ranges.js'
import type { Channel } from './transport.js'

export { DEFAULT_RECONCILE_LIMITS, type ReconcileLimits } from './reconcile-budget.js'

/*
 * Range-based set reconciliation (docs/PROTOCOL.md 7.4), after the designs of
 * negentropy and of Meyer's "Range-Based Set Reconciliation": pure, with no
 * transport and no clock. Two reconcilers, one per side, exchange Reconcile
 * frames until one of them says it is done; each side then knows which of the
 * peer's entries it lacks or holds older (`wants`), and fetches them.
 *
 * Per range, what arrives decides what goes back:
 *   Digest/Fingerprint equal to ours → Skip
 *   …different                       → our hashes, or fingerprints of buckets (reconcile-ranges.ts)
 *   Hashes, Reply, PartialReply, Items, PartialItems → the leaf exchange (reconcile-leaf.ts)
 * This file is the session: the salt, the rounds, what each answer must match,
 * and the message budget. A round in sync is one Digest each way.
 */

export interface ReconcilerInit {
  /** Our advertised index, frozen for the exchange. */
  index: ReconcileIndex
  /** The initiator speaks first and chooses the salt. */
  role: 'initiator' | 'responder'
  /** The exchange's salt (initiator only); random by default. Tests fix it. */
  salt?: Uint8Array
  limits?: Partial<ReconcileLimits>
}

export interface ReconcileStep {
  /** The frame to send back, if any. */
  reply: Uint8Array | undefined
  /** True when the exchange is over: after sending `reply` (if any), neither side sends another Reconcile frame. */
  done: boolean
}

export interface Reconciler {
  /** The initiator's first frame. */
  initiate: () => Uint8Array
  /** Handles one frame from the peer. Throws DmError('ERR_DECODE') on a malformed frame or a broken rule. */
  receive: (frame: Uint8Array) => ReconcileStep
  /** Entries the peer holds that we lack or hold older, in name order: fetch them from it once done. */
  wants: () => IndexEntry[]
  /** Frames received so far. */
  readonly rounds: number
}

/** What our last message asked of a range, so that only a matching answer is accepted for it. */
type Awaiting =
  | { answer: 'reply', newestMs: number } // we sent Hashes, with this newest timestamp
  // We sent a Reply, PartialReply, Items or PartialItems, holding back `withheld`; PartialItems is due only after our PartialReply.
  | { answer: 'items', withheld: IndexEntry[], claimed: boolean }

const EMPTY = new Uint8Array(0)

/** A Reply or Items is valid only as the answer our last message asked for in exactly that range. */
function checkSolicited (r: ReconcileRange, expected: Awaiting | undefined): void {
  if ((r.mode === RangeMode.Reply || r.mode === RangeMode.PartialReply) && expected?.answer !== 'reply') throw new DmError('ERR_DECODE', 'peer replied to hashes we did not send')
  if (r.mode === RangeMode.Items && expected?.answer !== 'items') throw new DmError('ERR_DECODE', 'peer sent items we did not ask for')
  if (r.mode === RangeMode.PartialItems && !(expected?.answer === 'items' && expected.claimed)) throw new DmError('ERR_DECODE', 'peer held items back where we made no claims')
}

export function createReconciler (init: ReconcilerInit): Reconciler {
  const { index } = init
  const limits: ReconcileLimits = { ...DEFAULT_RECONCILE_LIMITS, ...init.limits }
  let salt: Uint8Array | undefined = init.role === 'initiator' ? (init.salt ?? randomBytes(SALT_BYTES)) : undefined
  if (salt !== undefined && salt.length !== SALT_BYTES) throw new RangeError(`salt must be ${SALT_BYTES} bytes`)
  let rounds = 0
  let finished = false
  const ledger = createLedger(index, limits.maxLearned)
  let awaiting = new Map<string, Awaiting>()
  // The bounds of our last message: the peer's answer may refer to them.
  let sent: Bound[] = []

  /** Our hashes or bucket fingerprints for a range that differs; hashes await a Reply. */
  function differing (r: ReconcileRange, from: number, to: number, out: ReconcileRange[]): Awaiting | undefined {
    const described = describeDiffering(index, salt as Uint8Array, r.upper, from, to)
    out.push(...described)
    return described[0].mode === RangeMode.Hashes ? { answer: 'reply', newestMs: described[0].newestMs } : undefined
  }

  /** Our answer to one range (already checked as solicited), with what we then await for it. */
  function answer (r: ReconcileRange, from: number, to: number, expected: Awaiting | undefined, out: ReconcileRange[]): Awaiting | undefined {
    const s = salt as Uint8Array
    switch (r.mode) {
      case RangeMode.Skip:
        out.push(r)
        return undefined
      case RangeMode.Digest:
      case RangeMode.Fingerprint: {
        const ours = r.mode === RangeMode.Digest ? index.digest(from, to) : index.fingerprint(s, from, to)
        if (!Buffer.from(ours).equals(r.mode === RangeMode.Digest ? r.digest : r.fingerprint)) return differing(r, from, to, out)
        out.push({ upper: r.upper, mode: RangeMode.Skip })
        return undefined
      }
      case RangeMode.Hashes: {
        const a = answerHashes(index, s, r.upper, from, to, r.hashes, r.newestMs)
        if (a === undefined) return differing(r, from, to, out)
        out.push(a.range)
        return { answer: 'items', withheld: a.withheld, claimed: a.range.mode === RangeMode.PartialReply }
      }
      case RangeMode.Reply:
      case RangeMode.PartialReply: {
        const a = answerReply(index, ledger, from, to, expected?.answer === 'reply' ? expected.newestMs : 0, r)
        out.push(a.range)
        // They answer our Items with what they held back that ours did not supersede.
        return a.range.mode === RangeMode.Skip ? undefined : { answer: 'items', withheld: a.withheld, claimed: false }
      }
      case RangeMode.Items:
      case RangeMode.PartialItems: {
        const a = answerItems(ledger, r.upper, r.entries, expected?.answer === 'items' ? expected.withheld : [], r.mode === RangeMode.PartialItems)
        out.push(a)
        return a.mode === RangeMode.Skip ? undefined : { answer: 'items', withheld: [], claimed: false }
      }
    }
  }

  function respond (ranges: ReconcileRange[]): ReconcileRange[] {
    const s = salt as Uint8Array
    const out: ReconcileRange[] = []
    const next = new Map<string, Awaiting>()
    let bytes = 0
    let lower: Uint8Array = EMPTY
    let deferred = false
    let collapseFrom: number | undefined
    for (const r of ranges) {
      const from = index.lowerBound(lower)
      const to = index.lowerBound(r.upper)
      const expected = awaiting.get(rangeKey(lower, r.upper))
      checkSolicited(r, expected)
      if (!deferred) {
        const mark = out.length
        const awaited = answer(r, from, to, expected, out)
        if (awaited !== undefined) next.set(rangeKey(lower, r.upper), awaited)
        for (let i = mark; i < out.length; i++) bytes += sizeOf(out[i])
        deferred = bytes > limits.messageBytes || out.length > MAX_RANGES_PER_MESSAGE - SPLIT_BUCKETS - 1
      } else {
        // Over budget: still learn what they sent, and answer each remaining range with our
        // fingerprint of it, so the peer resumes there next round without splitting again.
        if ('entries' in r) ledger.learn(r.entries)
        if (collapseFrom !== undefined) { /* inside the collapsed rest */ } else if (out.length >= MAX_RANGES_PER_MESSAGE - 1 && r.upper !== null) collapseFrom = from
        else if (r.mode === RangeMode.Skip) out.push(r)
        else out.push({ upper: r.upper, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(s, from, to) })
      }
      if (r.upper !== null) lower = r.upper
    }
    if (collapseFrom !== undefined) {
      // Out of ranges too: the rest of the key space as one fingerprint, which the peer splits again.
      out.push({ upper: null, mode: RangeMode.Fingerprint, fingerprint: index.fingerprint(s, collapseFrom, index.size) })
    }
    awaiting = next
    return compact(out)
  }

  return {
    get rounds () { return rounds },
    initiate () {
      if (init.role !== 'initiator' || rounds > 0) throw new Error('initiate() is for the initiator, once')
      const ranges: ReconcileRange[] = [{ upper: null, mode: RangeMode.Digest, digest: index.digest(0, index.size) }]
      sent = boundsOf({ ranges })
      return encodeFrame(ranges, salt, [])
    },
    receive (frame) {
      if (finished) throw new DmError('ERR_DECODE', 'peer sent a reconcile frame after the exchange ended')
      const m = decodeReconcile(frame, sent)
      rounds++
      if (rounds > limits.maxRounds) throw new DmError('ERR_DECODE', `reconciliation still going after ${limits.maxRounds} messages`)
      if (init.role === 'responder' && rounds === 1) {
        if (m.salt === undefined) throw new DmError('ERR_DECODE', 'the first reconcile message carries no salt')
        salt = m.salt
      } else if (m.salt !== undefined) {
        throw new DmError('ERR_DECODE', 'only the first reconcile message carries a salt')
      }
      if (m.ranges.every(r => r.mode === RangeMode.Skip)) {
        finished = true
        return { reply: undefined, done: true }
      }
      const ranges = respond(m.ranges)
      finished = ranges.length === 1 && ranges[0].mode === RangeMode.Skip
      sent = boundsOf({ ranges })
      return { reply: encodeFrame(ranges, undefined, boundsOf(m)), done: finished }
    },
    wants: () => ledger.wants()
  }
}

/**
 * Runs one exchange over a channel and returns the wants. The initiator
 * speaks first; a responder may pass the first frame if it has read it
 * already. Does not close the channel: the caller closes it, then fetches the
 * wants from the same peer.
 */
export async function reconcileOver (ch: Channel, reconciler: Reconciler, role: ReconcilerInit['role'], first?: Uint8Array): Promise<IndexEntry[]> {
  if (role === 'initiator') await ch.send(reconciler.initiate())
  for (let frame = first ?? await ch.read(); ; frame = await ch.read()) {
    if (frame === undefined) throw new DmError('ERR_DECODE', 'stream ended in the middle of reconciliation')
    const step = reconciler.receive(frame)
    if (step.reply !== undefined) await ch.send(step.reply)
    if (step.done) return reconciler.wants()
  }
}
