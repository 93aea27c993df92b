import { Reader, Writer } from '../format/binary.js'
import { MAX_ATTACHMENT_BYTES, MAX_CONTENT_BYTES, decodeEnvelope, encodeEnvelope, type SignedVersion } from '../format/version.js'

/*
 * The local API (docs/API.md): HTTP/1.1 over a Unix socket. Publishing posts
 * one binary body, `u32 envelope length || envelope || content`; every other
 * call exchanges JSON.
 */

/** Largest envelope: fixed fields, a 255-byte name and full attachments. */
export const MAX_ENVELOPE_BYTES = 512 + MAX_ATTACHMENT_BYTES
export const MAX_PUBLISH_BODY_BYTES = 4 + MAX_ENVELOPE_BYTES + MAX_CONTENT_BYTES

export function encodePublishBody (v: SignedVersion, content: Uint8Array): Buffer {
  return Buffer.concat([encodePublishHead(v), content])
}

/** The part of a publish body before the content: `u32 envelope length || envelope`. */
export function encodePublishHead (v: SignedVersion): Buffer {
  return new Writer().bytes32(encodeEnvelope(v)).finish()
}

/** Decodes exactly a publish body's head (encodePublishHead); the content follows it on the wire. */
export function decodePublishHead (head: Uint8Array): SignedVersion {
  const r = new Reader(head, 'publish request')
  const version = decodeEnvelope(r.bytes32(MAX_ENVELOPE_BYTES))
  r.end()
  return version
}

/**
 * What a held version amounts to on this node (first that applies):
 * `tombstoned` a signed deletion; `unlisted` the name left `[files]` (the file
 * is kept, nothing new is accepted); `expired` past its expiry (the file is
 * removed); `missing` the file is absent or altered and being fetched again;
 * `present` the signed content is in `files/`.
 */
export type VersionState = 'present' | 'missing' | 'expired' | 'tombstoned' | 'unlisted'
export const VERSION_STATES: readonly VersionState[] = ['present', 'missing', 'expired', 'tombstoned', 'unlisted']

/** The JSON form of a held version, as `dm list --json` prints it. */
export interface VersionInfo {
  name: string
  size: number
  timestampMs: number
  signedAt: string
  expiresAtMs: number
  signer: string
  sha256: string
  id: string
  tombstone: boolean
  /** The signed content is in files/: false for tombstones, expired and missing versions. */
  present: boolean
  state: VersionState
}

export interface PeerInfoJson {
  id: string
  addrs: string[]
  connected: boolean
  bootstrap: boolean
  failures: number
  /** Why the last dial failed, in words; null once a dial succeeds. */
  lastError: string | null
  /** The same as a code scripts match (DialErrorCode in src/net/dial-error.ts): WRONG_PEER, CONNECTION_REFUSED, UNREACHABLE, TIMEOUT or OTHER. */
  lastErrorCode?: string | null
  /** The node name its membership certificate gives (private mesh), or null. */
  name: string | null
  /** When this member was last heard from: now while connected, else when its connection ended. */
  lastSeenMs: number | null
}

export interface StatusInfo {
  peerId: string
  listen: string[]
  network: string
  uptimeMs: number
  peersConnected: number
  peersKnown: number
  files: number
  syncRounds: number
  lastSyncAtMs: number | null
  lastSyncDurationMs: number | null
  /** Degraded when the node cannot do its job (e.g. bootstrap configured, no peer connected); `dm status` exits 4. */
  health?: Health
  /** Connected peers by who dialled: the node's degree in the mesh. */
  degree?: { inbound: number, outbound: number }
  /** This node's membership certificate on a private mesh; null on an open mesh. */
  certificate?: CertificateInfo | null
  /** The config in force and the reloads (SIGHUP) since start. */
  config?: ConfigInfo
  /** Where /metrics is served (host:port, with the port the kernel picked for port 0); null when [metrics] is off. */
  metrics?: string | null
}

export interface ConfigInfo {
  /** When the config in force was read: at start, or by the last reload that took. */
  loadedAtMs: number
  /** Reloads that took since start. */
  reloads: number
  /** Why the last reload failed (whole, or its certificate part); null once one takes. */
  lastReloadError: { code: string, reason: string, atMs: number } | null
}

export interface CertificateInfo {
  /** The node name it carries (may be empty). */
  name: string
  notBeforeMs: number
  notAfterMs: number
}

/**
 * Why a node is degraded, or will be: a stable code per reason and warning,
 * for scripts and tests to match instead of the sentence. Codes may be added.
 */
export type HealthCode =
  /** no peer connected while some member is known */
  | 'NO_PEER_CONNECTED'
  /** held files missing on disk, waiting to be fetched */
  | 'FILES_MISSING'
  /** this node's membership certificate has ended */
  | 'CERT_EXPIRED'
  /** this node's membership certificate has not started yet */
  | 'CERT_NOT_YET_VALID'
  /** a warning: this node's membership certificate ends within 14 days */
  | 'CERT_EXPIRING'

export interface Health {
  state: 'ok' | 'degraded'
  /** One sentence per reason, empty when ok. */
  reasons: string[]
  /** The code of each reason, in the same order (absent from a daemon older than the field). */
  reasonCodes?: HealthCode[]
  /** Not degraded yet, but will be (this node's certificate expires within 14 days); absent when none. */
  warnings?: string[]
  /** The code of each warning, in the same order; present with `warnings`. */
  warningCodes?: HealthCode[]
}

/** Error bodies carry the stable code; the CLI prints the reason. */
export interface ApiError {
  ok: false
  code: string
  reason: string
}
