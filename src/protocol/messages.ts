import { DmError } from '../errors.js'
import { Reader, Writer } from '../format/binary.js'
import { MAX_NAME_BYTES, printable } from '../format/names.js'
import { readEnvelope, encodeEnvelope, type SignedVersion } from '../format/version.js'
import { readReconcile, writeReconcile, type ReconcileMessage } from './reconcile-messages.js'

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

export * from './reconcile-messages.js'
