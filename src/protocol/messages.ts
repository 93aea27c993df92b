import { isAscii } from 'node:buffer'
import { DmError } from '../errors.js'
import { Reader, Writer } from '../format/binary.js'
import { MAX_NAME_BYTES, printable } from '../format/names.js'
import { readEnvelope, encodeEnvelope, type SignedVersion } from '../format/version.js'

/*
 * Wire messages of the sync protocols (docs/PROTOCOL.md). Each frame is
 * one message: a type byte, then its body. Decoders check every length
 * against the limits below before allocating.
 */

/** Protocol ids; the version in the id changes only with an incompatible change. */
export const PROTOCOL_PUSH_PULL = '/data-mesher/push-pull/2.0.0'
export const PROTOCOL_FETCH = '/data-mesher/fetch/2.0.0'
export const PROTOCOL_PUSH = '/data-mesher/push/1.0.0'

/** Append-only: never renumber, never reuse. */
export enum MessageType {
  Summary = 1,
  /** Retired with format 1 of push-pull (the whole-index exchange); decoded as unknown, never to be reused. */
  Index = 2,
  Want = 3,
  Version = 4,
  Chunk = 5,
  NotFound = 6,
  Push = 7,
  /** Range-based set reconciliation (format 2 of push-pull; section 7.4 of docs/PROTOCOL.md). */
  Reconcile = 8,
  /** Fetch answers for small versions, several to a frame, each with its content (fetch format 2). */
  Versions = 9
}

/** Largest Reconcile frame; honest encoders stop adding ranges well before it. */
export const MAX_RECONCILE_BYTES = 1024 * 1024

/** Largest frame any protocol accepts: a Reconcile message of push-pull. */
export const MAX_FRAME_BYTES = MAX_RECONCILE_BYTES

/**
 * Largest frame per protocol, enforced before a frame is buffered, so a peer
 * cannot park megabytes on streams whose messages are small.
 * push: an envelope plus 64 KiB of content. fetch: a Want of 1024 names or a 256 KiB chunk.
 */
export const MAX_FRAME_BYTES_BY_PROTOCOL: Readonly<Record<string, number>> = {
  [PROTOCOL_PUSH]: 80 * 1024,
  [PROTOCOL_FETCH]: 320 * 1024,
  [PROTOCOL_PUSH_PULL]: MAX_RECONCILE_BYTES
}

/**
 * Protocols whose streams stay open between messages: a push stream lives as
 * long as its connection, so a publish never waits for a stream to open. The
 * frame time-out applies from a frame's first byte, not between frames.
 */
export const LONG_LIVED_PROTOCOLS: ReadonlySet<string> = new Set([PROTOCOL_PUSH])

/**
 * Inbound streams per protocol per connection; with the frame limits above, about 10 MiB of partial frames at most.
 * push: an honest sender keeps one, and opens a second while replacing a broken one.
 */
export const MAX_INBOUND_STREAMS_BY_PROTOCOL: Readonly<Record<string, number>> = {
  [PROTOCOL_PUSH]: 4,
  [PROTOCOL_FETCH]: 4,
  [PROTOCOL_PUSH_PULL]: 2
}
/** Content is sent in chunks of at most this, so no frame approaches the stream's 4 MiB read-buffer reset. */
export const CHUNK_BYTES = 256 * 1024
/** Content up to this size rides inside a push; larger content is fetched by whoever wants it. */
export const MAX_INLINE_BYTES = 64 * 1024
export const MAX_WANT_ENTRIES = 1024
/**
 * A Versions frame: a server adds answers while the frame stays within this
 * (so it is well under the fetch frame limit, with one answer's worth to spare).
 */
export const VERSIONS_BATCH_BYTES = 192 * 1024
export const MAX_PEERS_PER_MESSAGE = 32
export const MAX_ADDRS_PER_PEER = 8
const MAX_PEER_ID_BYTES = 128
const MAX_ADDR_BYTES = 256

export interface IndexEntry {
  name: string
  timestampMs: number
  id: Uint8Array
}

export interface PeerInfo {
  id: string
  addrs: string[]
}

export type Message =
  | { type: MessageType.Summary, count: number, digest: Uint8Array, peers: PeerInfo[] }
  | { type: MessageType.Want, entries: Array<{ name: string, id: Uint8Array }> }
  | { type: MessageType.Version, version: SignedVersion }
  | { type: MessageType.Chunk, data: Uint8Array }
  | { type: MessageType.NotFound, name: string }
  | { type: MessageType.Push, version: SignedVersion, content: Uint8Array | undefined }
  | { type: MessageType.Versions, answers: Array<{ version: SignedVersion, content: Uint8Array }> }
  | ReconcileMessage

export function encodeMessage (m: Message): Buffer {
  const w = new Writer().u8(m.type)
  switch (m.type) {
    case MessageType.Summary:
      w.u32(m.count).bytes(m.digest).u8(m.peers.length)
      for (const p of m.peers) {
        w.string16(p.id).u8(p.addrs.length)
        for (const a of p.addrs) w.string16(a)
      }
      break
    case MessageType.Want:
      w.u16(m.entries.length)
      for (const e of m.entries) w.string16(e.name).bytes(e.id)
      break
    case MessageType.Version:
      w.bytes(encodeEnvelope(m.version))
      break
    case MessageType.Chunk:
      w.bytes(m.data)
      break
    case MessageType.NotFound:
      w.string16(m.name)
      break
    case MessageType.Push:
      w.bytes(encodeEnvelope(m.version))
      if (m.content === undefined) w.u8(0)
      else w.u8(1).bytes32(m.content)
      break
    case MessageType.Versions:
      w.u16(m.answers.length)
      for (const a of m.answers) w.bytes(encodeEnvelope(a.version)).bytes32(a.content)
      break
    case MessageType.Reconcile:
      writeReconcile(w, m)
      break
  }
  return w.finish()
}

/** Decodes one frame from an untrusted peer. Throws DmError('ERR_DECODE') on anything malformed. */
export function decodeMessage (frame: Uint8Array): Message {
  if (frame.length > MAX_FRAME_BYTES) throw new DmError('ERR_DECODE', `frame of ${frame.length} bytes exceeds ${MAX_FRAME_BYTES}`)
  const r = new Reader(frame, 'message')
  const type = r.u8()
  let m: Message
  switch (type) {
    case MessageType.Summary: {
      const count = r.u32()
      const digest = new Uint8Array(r.bytes(32))
      const n = r.u8()
      if (n > MAX_PEERS_PER_MESSAGE) throw new DmError('ERR_DECODE', `summary lists ${n} peers (at most ${MAX_PEERS_PER_MESSAGE})`)
      const peers: PeerInfo[] = []
      for (let i = 0; i < n; i++) {
        const id = r.string16(MAX_PEER_ID_BYTES)
        const k = r.u8()
        if (k > MAX_ADDRS_PER_PEER) throw new DmError('ERR_DECODE', `peer lists ${k} addresses (at most ${MAX_ADDRS_PER_PEER})`)
        const addrs: string[] = []
        for (let j = 0; j < k; j++) addrs.push(r.string16(MAX_ADDR_BYTES))
        peers.push({ id, addrs })
      }
      m = { type, count, digest, peers }
      break
    }
    case MessageType.Want: {
      const n = r.count16(MAX_WANT_ENTRIES)
      const entries: Array<{ name: string, id: Uint8Array }> = []
      for (let i = 0; i < n; i++) entries.push({ name: r.string16(MAX_NAME_BYTES), id: new Uint8Array(r.bytes(32)) })
      m = { type, entries }
      break
    }
    case MessageType.Version:
      m = { type, version: readEnvelope(r) }
      break
    case MessageType.Chunk: {
      if (r.remaining > CHUNK_BYTES) throw new DmError('ERR_DECODE', `chunk of ${r.remaining} bytes exceeds ${CHUNK_BYTES}`)
      m = { type, data: r.bytes(r.remaining) }
      break
    }
    case MessageType.NotFound:
      m = { type, name: r.string16(MAX_NAME_BYTES) }
      break
    case MessageType.Push: {
      const version = readEnvelope(r)
      const inline = r.u8()
      if (inline > 1) throw new DmError('ERR_DECODE', 'push has a bad content flag')
      m = { type, version, content: inline === 1 ? r.bytes32(MAX_INLINE_BYTES) : undefined }
      break
    }
    case MessageType.Versions: {
      const n = r.count16(MAX_WANT_ENTRIES)
      if (n === 0) throw new DmError('ERR_DECODE', 'versions message is empty')
      const answers: Array<{ version: SignedVersion, content: Uint8Array }> = []
      for (let i = 0; i < n; i++) {
        const version = readEnvelope(r)
        const content = r.bytes32(MAX_INLINE_BYTES)
        if (content.length !== version.size) throw new DmError('ERR_DECODE', `content of "${printable(version.name)}" is ${content.length} bytes, signed ${version.size}`)
        answers.push({ version, content })
      }
      m = { type, answers }
      break
    }
    case MessageType.Reconcile:
      if (frame.length > MAX_RECONCILE_BYTES) throw new DmError('ERR_DECODE', `reconcile message of ${frame.length} bytes exceeds ${MAX_RECONCILE_BYTES}`)
      m = readReconcile(r)
      break
    default:
      throw new DmError('ERR_DECODE', `unknown message type ${type}`)
  }
  r.end()
  return m
}

/** Reads the next message and insists on its type. */
export function expectType<T extends MessageType> (m: Message, type: T): Extract<Message, { type: T }> {
  if (m.type !== type) throw new DmError('ERR_DECODE', `expected message type ${MessageType[type]}, got ${MessageType[m.type]}`)
  return m as Extract<Message, { type: T }>
}

/*
 * Reconcile: range-based set reconciliation, the second format of push-pull
 * (docs/PROTOCOL.md section 7.4; the state machine is src/sync/reconcile.ts).
 * A message is a list of ranges that together cover the whole key space
 * (keys are names, compared bytewise), each with a mode saying what the
 * sender knows or asks about its entries in that range.
 */

/** 2: entry timestamps as varints, Hashes carry the sender's newest timestamp, and PartialReply. */
export const RECONCILE_VERSION = 2
/** Random bytes the initiator mixes into every fingerprint and item hash of one exchange. */
export const SALT_BYTES = 16
/** The unsalted whole-range digest: a full SHA-256, so it can be cached between exchanges. */
export const DIGEST_BYTES = 32
/** A salted range fingerprint. */
export const FINGERPRINT_BYTES = 16
/** A salted per-entry hash, listed for small ranges. */
export const ITEM_HASH_BYTES = 3
export const MAX_RANGES_PER_MESSAGE = 8192
export const MAX_HASHES_PER_RANGE = 256
export const MAX_ITEMS_PER_LIST = 1024
const MAX_REQUEST_BYTES = MAX_HASHES_PER_RANGE / 8
/** Longest bound: a prefix of a name. */
const MAX_BOUND_BYTES = MAX_NAME_BYTES

/** What a range carries. Append-only, like MessageType. */
export enum RangeMode {
  /** Nothing more to say about this range. */
  Skip = 0,
  /** The unsalted SHA-256 digest of the sender's entries in the range. */
  Digest = 1,
  /** The salted, truncated fingerprint of the sender's entries in the range. */
  Fingerprint = 2,
  /** One salted hash per sender's entry in the range, in key order, and the newest timestamp among those entries. */
  Hashes = 3,
  /** Answer to Hashes: the sender's entries that matched none of them, and a bitmap of the hashes it did not match. */
  Reply = 4,
  /** Answer to a Reply: the sender's entries the bitmap asked for that the other side listed nothing newer of. */
  Items = 5,
  /** A Reply that holds back entries the sender guesses older than the receiver's: answer with Items, even empty. */
  PartialReply = 6
}

/**
 * An upper bound: a key prefix, or null for +∞. A range runs from the previous
 * range's upper bound (the empty key for the first range), inclusive, to its
 * own, exclusive.
 */
export type Bound = Uint8Array | null

export type ReconcileRange =
  | { upper: Bound, mode: RangeMode.Skip }
  | { upper: Bound, mode: RangeMode.Digest, digest: Uint8Array }
  | { upper: Bound, mode: RangeMode.Fingerprint, fingerprint: Uint8Array }
  /** `hashes` is the concatenation of ITEM_HASH_BYTES-byte hashes; `newestMs` the largest timestampMs of their entries (0 if none). */
  | { upper: Bound, mode: RangeMode.Hashes, hashes: Uint8Array, newestMs: number }
  | { upper: Bound, mode: RangeMode.Reply | RangeMode.PartialReply, entries: IndexEntry[], request: Uint8Array }
  | { upper: Bound, mode: RangeMode.Items, entries: IndexEntry[] }

export interface ReconcileMessage {
  type: MessageType.Reconcile
  /** Present only in the initiator's first message. */
  salt: Uint8Array | undefined
  ranges: ReconcileRange[]
}

/** Bytes two keys have in common from the start. */
export function commonPrefix (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  let i = 0
  while (i < n && a[i] === b[i]) i++
  return i
}

/** A key front-coded against the previous one: shared prefix length, then the rest. */
function writeKey (w: Writer, prev: Uint8Array, key: Uint8Array): void {
  const shared = commonPrefix(prev, key)
  w.u8(shared).u8(key.length - shared).bytes(key.subarray(shared))
}

/** Reads a front-coded key; the shared length must be the longest common prefix, so every key has one encoding. */
function readKey (r: Reader, prev: Uint8Array, what: string): Uint8Array {
  const shared = r.u8()
  const suffix = r.bytes(r.u8())
  if (shared > prev.length) throw new DmError('ERR_DECODE', `${what} shares ${shared} bytes with a ${prev.length}-byte predecessor`)
  if (shared + suffix.length > MAX_BOUND_BYTES) throw new DmError('ERR_DECODE', `${what} is longer than ${MAX_BOUND_BYTES} bytes`)
  if (shared < prev.length && suffix.length > 0 && suffix[0] === prev[shared]) throw new DmError('ERR_DECODE', `${what} is not front-coded canonically`)
  const key = new Uint8Array(shared + suffix.length)
  key.set(prev.subarray(0, shared))
  key.set(suffix, shared)
  return key
}

function writeEntries (w: Writer, entries: IndexEntry[]): void {
  w.u16(entries.length)
  let prev: Uint8Array = new Uint8Array(0)
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8')
    writeKey(w, prev, name)
    w.uvarint(e.timestampMs).bytes(e.id)
    prev = name
  }
}

/** Entries in strictly ascending key order, each inside [lower, upper). */
function readEntries (r: Reader, lower: Uint8Array, upper: Bound): IndexEntry[] {
  const n = r.count16(MAX_ITEMS_PER_LIST)
  const entries: IndexEntry[] = []
  let prev: Uint8Array = new Uint8Array(0)
  for (let i = 0; i < n; i++) {
    const key = readKey(r, prev, 'entry name')
    if (key.length === 0) throw new DmError('ERR_DECODE', 'entry has an empty name')
    if (i > 0 && Buffer.compare(key, prev) <= 0) throw new DmError('ERR_DECODE', 'entries are not in ascending order')
    if (Buffer.compare(key, lower) < 0 || (upper !== null && Buffer.compare(key, upper) >= 0)) throw new DmError('ERR_DECODE', 'entry lies outside its range')
    const view = Buffer.from(key.buffer, key.byteOffset, key.length)
    // Names are ASCII in practice (docs/PROTOCOL.md section 1): skip the UTF-8 round trip for them.
    const name = isAscii(view) ? view.toString('latin1') : view.toString('utf8')
    if (!isAscii(view) && !Buffer.from(name, 'utf8').equals(view)) throw new DmError('ERR_DECODE', 'entry name is not UTF-8')
    entries.push({ name, timestampMs: r.uvarint(), id: new Uint8Array(r.bytes(32)) })
    prev = key
  }
  return entries
}

function writeReconcile (w: Writer, m: ReconcileMessage): void {
  w.u8(RECONCILE_VERSION)
  if (m.salt === undefined) w.u8(0)
  else w.u8(m.salt.length).bytes(m.salt)
  w.u16(m.ranges.length)
  let prev: Uint8Array = new Uint8Array(0)
  for (const range of m.ranges) {
    // +∞ is the empty bound: no upper bound is ever the empty key, the least of all.
    writeKey(w, range.upper === null ? new Uint8Array(0) : prev, range.upper ?? new Uint8Array(0))
    w.u8(range.mode)
    switch (range.mode) {
      case RangeMode.Skip: break
      case RangeMode.Digest: w.bytes(range.digest); break
      case RangeMode.Fingerprint: w.bytes(range.fingerprint); break
      case RangeMode.Hashes: w.uvarint(range.newestMs).u16(range.hashes.length / ITEM_HASH_BYTES).bytes(range.hashes); break
      case RangeMode.Reply: case RangeMode.PartialReply: writeEntries(w, range.entries); w.u8(range.request.length).bytes(range.request); break
      case RangeMode.Items: writeEntries(w, range.entries); break
    }
    if (range.upper !== null) prev = range.upper
  }
}

function readReconcile (r: Reader): ReconcileMessage {
  const version = r.u8()
  if (version !== RECONCILE_VERSION) throw new DmError('ERR_DECODE', `reconcile version ${version} is not supported (only ${RECONCILE_VERSION})`)
  const saltLength = r.u8()
  if (saltLength !== 0 && saltLength !== SALT_BYTES) throw new DmError('ERR_DECODE', `reconcile salt of ${saltLength} bytes (0 or ${SALT_BYTES})`)
  const salt = saltLength === 0 ? undefined : new Uint8Array(r.bytes(saltLength))
  const count = r.u16()
  if (count === 0 || count > MAX_RANGES_PER_MESSAGE) throw new DmError('ERR_DECODE', `reconcile lists ${count} ranges (1 to ${MAX_RANGES_PER_MESSAGE})`)
  const ranges: ReconcileRange[] = []
  let lower: Uint8Array = new Uint8Array(0)
  for (let i = 0; i < count; i++) {
    const key = readKey(r, lower, 'range bound')
    const upper = key.length === 0 ? null : key
    if (upper !== null && Buffer.compare(upper, lower) <= 0) throw new DmError('ERR_DECODE', 'ranges are out of order or overlap')
    if ((upper === null) !== (i === count - 1)) throw new DmError('ERR_DECODE', 'the last range, and only it, must end at +∞')
    const mode = r.u8()
    switch (mode) {
      case RangeMode.Skip: ranges.push({ upper, mode }); break
      case RangeMode.Digest: ranges.push({ upper, mode, digest: new Uint8Array(r.bytes(DIGEST_BYTES)) }); break
      case RangeMode.Fingerprint: ranges.push({ upper, mode, fingerprint: new Uint8Array(r.bytes(FINGERPRINT_BYTES)) }); break
      case RangeMode.Hashes: {
        const newestMs = r.uvarint()
        const n = r.count16(MAX_HASHES_PER_RANGE)
        ranges.push({ upper, mode, hashes: new Uint8Array(r.bytes(n * ITEM_HASH_BYTES)), newestMs })
        break
      }
      case RangeMode.Reply: case RangeMode.PartialReply: {
        const entries = readEntries(r, lower, upper)
        const n = r.u8()
        if (n > MAX_REQUEST_BYTES) throw new DmError('ERR_DECODE', `reply bitmap of ${n} bytes (at most ${MAX_REQUEST_BYTES})`)
        ranges.push({ upper, mode, entries, request: new Uint8Array(r.bytes(n)) })
        break
      }
      case RangeMode.Items: ranges.push({ upper, mode, entries: readEntries(r, lower, upper) }); break
      default: throw new DmError('ERR_DECODE', `unknown range mode ${mode}`)
    }
    if (upper !== null) lower = upper
  }
  return { type: MessageType.Reconcile, salt, ranges }
}
