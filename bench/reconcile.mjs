// Bytes on the wire of one push-pull round: range-based reconciliation
// (format 2, src/sync/reconcile.ts) beside the format-1 full-index exchange
// (Summary + Index both ways), computed with the real encoders in the same
// run. In memory, no daemons: the figures are exact byte counts, including
// each frame's varint length prefix, excluding Noise and yamux framing (the
// same for both). Loads the sources through tsx (no build needed). Format 1's
// Index is retired from the code; its bytes are computed from its documented
// layout (docs/PROTOCOL.md: u32 count, then u16 name length, name, u64
// timestamp, 32-byte id per entry), which is what it sent.
//
// --breakdown adds a table of where the bytes go (bounds, fingerprints, item
// hashes, entries...), per case, counted by the decoder (decodeReconcile).
//
//   node bench/reconcile.mjs [--seed N] [--breakdown]
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { tsImport } from 'tsx/esm/api'

const { MessageType, RECONCILE_VERSION, encodeMessage, decodeReconcile, boundsOf } = await tsImport('../src/protocol/messages.ts', import.meta.url)
const { createReconcileIndex } = await tsImport('../src/sync/fingerprint.ts', import.meta.url)
const { createReconciler } = await tsImport('../src/sync/reconcile.ts', import.meta.url)

const args = process.argv.slice(2)
const seed = Number(args[args.indexOf('--seed') + 1] ?? 1) || 1
const breakdown = args.includes('--breakdown')

/** mulberry32: a small seeded PRNG, so every run picks the same entries. */
function prng (s) {
  return () => {
    s = (s + 0x6D2B79F5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const random = prng(seed)
const sha = s => new Uint8Array(createHash('sha256').update(s).digest())
const T0 = 1_764_000_000_000

/** n entries named like a fleet's files: `hosts/host-00042/status`. */
function index (n) {
  return Array.from({ length: n }, (_, i) => ({ name: `hosts/host-${String(i).padStart(5, '0')}/status`, timestampMs: T0 + i, id: sha(`v${i}`) }))
}
function pick (n, k) {
  const s = new Set()
  while (s.size < k) s.add(Math.floor(random() * n))
  return s
}
const newer = (entries, which) => entries.map((e, i) => which.has(i) ? { ...e, timestampMs: e.timestampMs + 60_000, id: sha(`v${i}'`) } : e)
const without = (entries, which) => entries.filter((_, i) => !which.has(i))

const varintBytes = n => n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4
const wire = frame => frame.length + varintBytes(frame.length)

/** Format 1: a Summary each way and, as the digests differ, the whole Index each way. */
function fullIndexExchange (a, b) {
  const summary = e => wire(encodeMessage({ type: MessageType.Summary, count: e.length, digest: new Uint8Array(32), peers: [] }))
  const idxBytes = e => 1 + 4 + e.reduce((n, x) => n + 2 + Buffer.byteLength(x.name) + 8 + 32, 0)
  const idx = e => idxBytes(e) + varintBytes(idxBytes(e))
  return { ab: summary(a) + idx(a), ba: summary(b) + idx(b), summaries: summary(a) + summary(b) }
}

/** Format 2: the initiator holds a, the responder b; frames are passed until one side is done. */
function reconcile (a, b) {
  const ia = createReconcileIndex(a)
  const ib = createReconcileIndex(b)
  const t = performance.now()
  const A = createReconciler({ index: ia, role: 'initiator' })
  const B = createReconciler({ index: ib, role: 'responder' })
  let frame = A.initiate()
  const frames = [frame]
  let ab = wire(frame)
  let ba = 0
  for (let to = B; ;) {
    const step = to.receive(frame)
    if (step.reply !== undefined) {
      frames.push(step.reply)
      if (to === A) ab += wire(step.reply); else ba += wire(step.reply)
      frame = step.reply
    }
    if (step.done) break
    to = to === A ? B : A
  }
  return { ab, ba, messages: frames.length, ms: performance.now() - t, frames }
}

/** Bytes of the differing entries alone, as format-1 Index entries (u16 length, name, u64, 32-byte id). */
const entriesAlone = entries => entries.reduce((s, e) => s + 2 + Buffer.byteLength(e.name) + 8 + 32, 0)

const ten = index(10_000)
const hundred = index(100_000)
const one = pick(10_000, 1)
const thousand = pick(10_000, 1000)
const differing = ten.filter((_, i) => thousand.has(i))
const firstHalf = new Set([...thousand].slice(0, 500))
const secondHalf = new Set([...thousand].slice(500))
const KiB = 1024

const cases = [
  { what: 'in sync, 10,000 names', a: ten, b: ten, target: KiB, targetText: '≤ 1 KiB' },
  { what: 'in sync, 100,000 names', a: hundred, b: hundred, target: KiB, targetText: '≤ 1 KiB' },
  { what: '1 of 10,000 newer on the responder', a: ten, b: newer(ten, one), target: 4 * KiB, targetText: '≤ 4 KiB' },
  { what: '1 of 10,000 missing on the initiator', a: without(ten, one), b: ten, target: 4 * KiB, targetText: '≤ 4 KiB' },
  ...[
    ['1,000 of 10,000 missing on the initiator', without(ten, thousand), ten],
    ['1,000 of 10,000 missing on the responder', ten, without(ten, thousand)],
    ['1,000 of 10,000 newer on the responder', ten, newer(ten, thousand)],
    ['1,000 of 10,000 newer on the initiator', newer(ten, thousand), ten],
    ['1,000 of 10,000 newer, half on each side', newer(ten, firstHalf), newer(ten, secondHalf)]
  ].map(([what, a, b]) => ({ what, a, b, alone: entriesAlone(differing), target: 1.5 * entriesAlone(differing), targetText: `≤ 1.5 × ${entriesAlone(differing)} B` }))
]

const tallies = []
console.log(`bench/reconcile.mjs, seed ${seed}, node ${process.version}, reconcile message version ${RECONCILE_VERSION}; bytes = frames + varint length prefixes, both ways`)
console.log('| case | format 2 A→B | B→A | total | messages | format 1 full-index exchange | ratio | target | met? | CPU |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const c of cases) {
  const r = reconcile(c.a, c.b)
  tallies.push(tally(c.what, r.frames))
  const f = fullIndexExchange(c.a, c.b)
  const total = r.ab + r.ba
  const full = f.ab + f.ba
  const fullText = c.a.length > 40_000 ? `${full} (over format 1's 40,000-entry cap; in sync it sends the 2 Summaries, ${f.summaries} B)` : c.a === c.b ? `${full} (in sync it sends the 2 Summaries, ${f.summaries} B)` : String(full)
  console.log(`| ${c.what} | ${r.ab} | ${r.ba} | ${total} | ${r.messages} | ${fullText} | ${(total / full).toFixed(3)} | ${c.targetText} | ${total <= c.target ? 'yes' : 'no'}${c.alone === undefined ? '' : ` (${(total / c.alone).toFixed(2)}× the entries alone)`} | ${r.ms.toFixed(0)} ms |`)
}

/** Where the bytes of one exchange go, by what the decoder read them as, plus the frames' length prefixes. */
function tally (what, frames) {
  const bytes = new Map([['length prefixes', frames.reduce((n, f) => n + wire(f) - f.length, 0)]])
  // Each frame answers the one before, whose bounds it may refer to.
  let answered = []
  for (const f of frames) answered = boundsOf(decodeReconcile(f, answered, (k, n) => bytes.set(k, (bytes.get(k) ?? 0) + n)))
  return { what, bytes }
}

if (breakdown) {
  const columns = [...new Set(tallies.flatMap(t => [...t.bytes.keys()]))]
  console.log('\nWhere the bytes go (decoder tally; sums to the total above)')
  console.log(`| case | ${columns.join(' | ')} |`)
  console.log(`|---|${columns.map(() => '---|').join('')}`)
  for (const t of tallies) console.log(`| ${t.what} | ${columns.map(k => t.bytes.get(k) ?? 0).join(' | ')} |`)
}
