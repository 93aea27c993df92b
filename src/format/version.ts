import { createHash, type KeyObject } from 'node:crypto'
import { DmError } from '../errors.js'
import { sign, signatureFault, SIGNATURE_BYTES, type SignatureFault } from '../crypto/ed25519.js'
import { PUBLIC_KEY_BYTES } from '../crypto/keys.js'
import { Reader, Writer } from './binary.js'
import { MAX_NAME_BYTES, assertValidName } from './names.js'

/*
 * The signed version: the unit that is signed, gossiped, checked and stored.
 * docs/PROTOCOL.md specifies these bytes with test vectors; change nothing here
 * without changing the tag.
 */

/** Domain separation: a signature over these bytes can mean nothing else. */
export const VERSION_TAG = Buffer.from('data-mesher/version/1\0', 'ascii')
/** Domain separation for deriving the 32-byte network id from `[network] id`. */
export const NETWORK_TAG = Buffer.from('data-mesher/network/1\0', 'ascii')

/** Largest content a version may carry: 10 MiB. */
export const MAX_CONTENT_BYTES = 10 * 1024 * 1024
/** Bound on the unsigned attachments area (room for a namespace certificate). */
export const MAX_ATTACHMENT_BYTES = 4096

/** Append-only: new kinds get new numbers, old numbers never change meaning. */
export enum VersionKind {
  /** The name holds this content. */
  File = 1,
  /** The name is deleted; size is 0 and the hash is SHA-256 of nothing. */
  Tombstone = 2
}

export interface VersionHeader {
  kind: VersionKind
  /** 32 bytes; see networkIdFrom(). Binds the signature to one mesh. */
  networkId: Uint8Array
  name: string
  /** Signer's clock, milliseconds since the Unix epoch. Later wins. */
  timestampMs: number
  /** Milliseconds since the epoch after which the version is void; 0 for never. */
  expiresAtMs: number
  size: number
  /** SHA-256 of the content. */
  sha256: Uint8Array
}

export interface SignedVersion extends VersionHeader {
  /** Raw Ed25519 public key, 32 bytes. */
  signer: Uint8Array
  signature: Uint8Array
  /** Unsigned, self-authenticating extras (none defined in format 1); kept verbatim. */
  attachments: Uint8Array
}

export function networkIdFrom (id: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NETWORK_TAG).update(id, 'utf8').digest())
}

export function sha256 (data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest())
}

/** SHA-256 of no bytes, written out: hashing at load time would load node:crypto before any command needs it. */
export const EMPTY_SHA256 = new Uint8Array(Buffer.from('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'))

/** The exact bytes that are signed. */
export function signedBytes (h: VersionHeader): Buffer {
  if (h.networkId.length !== 32) throw new RangeError('network id must be 32 bytes')
  if (h.sha256.length !== 32) throw new RangeError('sha256 must be 32 bytes')
  return new Writer()
    .bytes(VERSION_TAG)
    .u8(h.kind)
    .bytes(h.networkId)
    .string16(h.name)
    .u64(h.timestampMs)
    .u64(h.expiresAtMs)
    .u64(h.size)
    .bytes(h.sha256)
    .finish()
}

export function signVersion (header: VersionHeader, privateKey: KeyObject, signer: Uint8Array): SignedVersion {
  assertValidName(header.name)
  return { ...header, signer, signature: sign(privateKey, signedBytes(header)), attachments: new Uint8Array(0) }
}

/** Why the signature is refused by strict Ed25519 (docs/PROTOCOL.md section 3.1), or undefined when valid. */
export function signatureFaultOf (v: SignedVersion): SignatureFault | undefined {
  return signatureFault(v.signer, signedBytes(v), v.signature)
}

export function signatureIsValid (v: SignedVersion): boolean {
  return signatureFaultOf(v) === undefined
}

/** envelope = signed bytes || signer (32) || signature (64) || u16 length || attachments */
export function encodeEnvelope (v: SignedVersion): Buffer {
  return new Writer()
    .bytes(signedBytes(v))
    .bytes(v.signer)
    .bytes(v.signature)
    .bytes16(v.attachments)
    .finish()
}

/**
 * Decodes an envelope from untrusted bytes. It checks structure only (lengths,
 * kind, name syntax); whether to believe it is the acceptance policy's job.
 */
export function decodeEnvelope (buf: Uint8Array): SignedVersion {
  const r = new Reader(buf, 'envelope')
  const v = readEnvelope(r)
  r.end()
  return v
}

export function readEnvelope (r: Reader): SignedVersion {
  const tag = r.bytes(VERSION_TAG.length)
  if (!Buffer.from(tag).equals(VERSION_TAG)) throw new DmError('ERR_DECODE', 'envelope has an unknown format tag')
  const kind = r.u8()
  if (kind !== VersionKind.File && kind !== VersionKind.Tombstone) throw new DmError('ERR_DECODE', `envelope has unknown kind ${kind}`)
  const networkId = copy(r.bytes(32))
  const name = r.string16(MAX_NAME_BYTES)
  try {
    assertValidName(name)
  } catch (err) {
    throw new DmError('ERR_NAME_INVALID', (err as Error).message)
  }
  const timestampMs = r.u64()
  const expiresAtMs = r.u64()
  const size = r.u64()
  const hash = copy(r.bytes(32))
  const signer = copy(r.bytes(PUBLIC_KEY_BYTES))
  const signature = copy(r.bytes(SIGNATURE_BYTES))
  const attachments = copy(r.bytes16(MAX_ATTACHMENT_BYTES))
  return { kind, networkId, name, timestampMs, expiresAtMs, size, sha256: hash, signer, signature, attachments }
}

function copy (b: Uint8Array): Uint8Array { return new Uint8Array(b) }

/**
 * A version's identity: SHA-256(signed bytes || signer). Two envelopes with the
 * same id say the same thing, whatever their signature bytes or attachments.
 */
export function versionId (v: SignedVersion): Uint8Array {
  return new Uint8Array(createHash('sha256').update(signedBytes(v)).update(v.signer).digest())
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

/**
 * The same version as `versionId` says it, without hashing: the same signed
 * fields, signer and signature, whatever the attachments. How a node drops the
 * copies of a push it already holds before any hash or verify.
 */
export function sameVersion (a: SignedVersion, b: SignedVersion): boolean {
  return a.timestampMs === b.timestampMs && a.name === b.name && a.kind === b.kind && a.size === b.size && a.expiresAtMs === b.expiresAtMs &&
    equalBytes(a.signature, b.signature) && equalBytes(a.signer, b.signer) && equalBytes(a.sha256, b.sha256) && equalBytes(a.networkId, b.networkId)
}

/**
 * The total order every node applies: a later timestamp wins; on equal
 * timestamps the larger version id wins (bytewise), so all nodes pick the same.
 * Returns >0 when a is newer, <0 when b is, 0 when they are the same version.
 */
/** An expired version keeps its envelope (so older versions stay refused) but loses its file. */
export function isExpired (v: Pick<SignedVersion, 'expiresAtMs'>, nowMs: number): boolean {
  return v.expiresAtMs !== 0 && v.expiresAtMs <= nowMs
}

export function compareVersions (a: { timestampMs: number, id: Uint8Array }, b: { timestampMs: number, id: Uint8Array }): number {
  if (a.timestampMs !== b.timestampMs) return a.timestampMs > b.timestampMs ? 1 : -1
  return Buffer.compare(a.id, b.id)
}

export function hex (b: Uint8Array): string { return Buffer.from(b).toString('hex') }

export interface NewVersionOptions {
  name: string
  networkId: Uint8Array
  privateKey: KeyObject
  signer: Uint8Array
  /** undefined for a tombstone */
  content?: Uint8Array
  timestampMs: number
  /** 0 for never */
  expiresAtMs?: number
}

/** Builds and signs a version of `content` (or a tombstone when content is undefined). */
export function newVersion (o: NewVersionOptions): SignedVersion {
  const content = o.content ?? new Uint8Array(0)
  return signVersion({
    kind: o.content === undefined ? VersionKind.Tombstone : VersionKind.File,
    networkId: o.networkId,
    name: o.name,
    timestampMs: o.timestampMs,
    expiresAtMs: o.expiresAtMs ?? 0,
    size: content.length,
    sha256: sha256(content)
  }, o.privateKey, o.signer)
}
