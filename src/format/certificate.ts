import type { KeyObject } from 'node:crypto'
import { DmError, type ErrorCode } from '../errors.js'
import { sign, signatureFault, SIGNATURE_BYTES } from '../crypto/ed25519.js'
import { PUBLIC_KEY_BYTES } from '../crypto/keys.js'
import { Reader, Writer } from './binary.js'
import { nameProblem, printable } from './names.js'

/*
 * Certificates: a network key (or an issuer key the config lists) vouches for
 * another Ed25519 key, for a purpose, for a window of time. docs/PROTOCOL.md
 * section 11 specifies these bytes with test vectors; change nothing here
 * without changing the tag.
 */

/** Domain separation: a certificate signature can never be read as a version signature, or the reverse. */
export const CERT_TAG = Buffer.from('data-mesher/cert/1\0', 'ascii')

/** Append-only: a certificate of one kind is never accepted for another purpose. */
export enum CertKind {
  /** The subject is a node's libp2p identity key: it may join the mesh. */
  Membership = 1,
  /** The subject is a signing key: it may write its own names under the namespace `name`. */
  Namespace = 2
}

/** Longest certificate name: a namespace is a file name prefix (255 bytes at most, section 1). */
export const MAX_CERT_NAME_BYTES = 255
/** Longest node name in a membership certificate (upstream's fixed field is 64 bytes). */
export const MAX_NODE_NAME_BYTES = 64
/** A node name: what a file name segment may hold, so it prints safely in logs and status. */
const NODE_NAME = /^[A-Za-z0-9._-]*$/

export interface CertBody {
  kind: CertKind
  /** The raw 32-byte Ed25519 public key vouched for. */
  subject: Uint8Array
  /** The window, milliseconds since the epoch: valid when notBeforeMs <= t < notAfterMs. */
  notBeforeMs: number
  notAfterMs: number
  /** Membership: the node's name (may be empty). Namespace: the namespace, a valid file name. */
  name: string
  /** The raw 32-byte Ed25519 public key that signed it. */
  issuer: Uint8Array
}

export interface Certificate extends CertBody {
  signature: Uint8Array
}

/** The exact bytes the issuer signs. */
export function certSignedBytes (c: CertBody): Buffer {
  if (c.subject.length !== PUBLIC_KEY_BYTES || c.issuer.length !== PUBLIC_KEY_BYTES) throw new RangeError('keys must be 32 bytes')
  return new Writer()
    .bytes(CERT_TAG)
    .u8(c.kind)
    .bytes(c.subject)
    .u64(c.notBeforeMs)
    .u64(c.notAfterMs)
    .string16(c.name)
    .bytes(c.issuer)
    .finish()
}

/** certificate = signed bytes || signature (64) */
export function encodeCertificate (c: Certificate): Buffer {
  return Buffer.concat([certSignedBytes(c), c.signature])
}

/** Why the body is malformed (structure, not trust), or undefined. */
function bodyProblem (c: CertBody): string | undefined {
  if (c.kind !== CertKind.Membership && c.kind !== CertKind.Namespace) return `has unknown kind ${String(c.kind)}`
  if (c.notAfterMs <= c.notBeforeMs) return 'ends before it starts'
  if (c.kind === CertKind.Namespace) {
    const p = nameProblem(c.name)
    if (p !== undefined) return `names a namespace that ${p}`
  } else if (Buffer.byteLength(c.name) > MAX_NODE_NAME_BYTES || !NODE_NAME.test(c.name)) {
    return `has a node name that is not at most ${MAX_NODE_NAME_BYTES} characters of [A-Za-z0-9._-]`
  }
  return undefined
}

export function signCertificate (body: CertBody, issuerKey: KeyObject): Certificate {
  const problem = bodyProblem(body)
  if (problem !== undefined) throw new DmError('ERR_USAGE', `certificate ${problem}`)
  return { ...body, signature: sign(issuerKey, certSignedBytes(body)) }
}

/** Decodes a certificate from untrusted bytes: structure only (ERR_DECODE); whether to trust it is verifyCertificate's job. */
export function decodeCertificate (buf: Uint8Array): Certificate {
  const r = new Reader(buf, 'certificate')
  if (!Buffer.from(r.bytes(CERT_TAG.length)).equals(CERT_TAG)) throw new DmError('ERR_DECODE', 'certificate has an unknown format tag')
  const c: Certificate = {
    kind: r.u8(),
    subject: copy(r.bytes(PUBLIC_KEY_BYTES)),
    notBeforeMs: r.u64(),
    notAfterMs: r.u64(),
    name: r.string16(MAX_CERT_NAME_BYTES),
    issuer: copy(r.bytes(PUBLIC_KEY_BYTES)),
    signature: copy(r.bytes(SIGNATURE_BYTES))
  }
  r.end()
  const problem = bodyProblem(c)
  if (problem !== undefined) throw new DmError('ERR_DECODE', `certificate ${problem}`)
  return c
}

function copy (b: Uint8Array): Uint8Array { return new Uint8Array(b) }

export interface CertExpectation {
  kind: CertKind
  /** The key the certificate must vouch for. */
  subject: Uint8Array
  /** Keys whose signature is trusted for this purpose (the network key, listed issuers). */
  issuers: readonly Uint8Array[]
  /** For a namespace certificate: the namespace it must name. */
  name?: string
  /** The instant that must fall inside the window (a version's signing time, or now). */
  atMs: number
}

export interface CertRefusal { code: ErrorCode, reason: string }

/**
 * Why `c` does not vouch for what is expected, or undefined when it does.
 * Cheap comparisons first; the signature is checked before the name and the
 * window, so those refusals are only ever said of a genuine certificate.
 */
export function verifyCertificate (c: Certificate, want: CertExpectation): CertRefusal | undefined {
  if (c.kind !== want.kind) return { code: 'ERR_CERT_INVALID', reason: `is a ${kindName(c.kind)} certificate, not a ${kindName(want.kind)} one` }
  if (!Buffer.from(c.subject).equals(want.subject)) return { code: 'ERR_CERT_INVALID', reason: 'vouches for another key' }
  if (!want.issuers.some(k => Buffer.from(k).equals(c.issuer))) return { code: 'ERR_CERT_INVALID', reason: `is issued by ${Buffer.from(c.issuer).toString('base64')}, which is not trusted for this` }
  const fault = signatureFault(c.issuer, certSignedBytes(c), c.signature)
  if (fault !== undefined) return { code: 'ERR_CERT_INVALID', reason: `has a signature that is not valid (${fault})` }
  if (want.name !== undefined && c.name !== want.name) return { code: 'ERR_CERT_WRONG_NAMESPACE', reason: `is for namespace "${printable(c.name)}", not "${printable(want.name)}"` }
  if (want.atMs < c.notBeforeMs || want.atMs >= c.notAfterMs) {
    return { code: 'ERR_CERT_EXPIRED', reason: `is valid from ${iso(c.notBeforeMs)} to ${iso(c.notAfterMs)}, not at ${iso(want.atMs)}` }
  }
  return undefined
}

export function kindName (k: CertKind): string {
  return k === CertKind.Membership ? 'membership' : k === CertKind.Namespace ? 'namespace' : `kind-${String(k)}`
}

function iso (ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString()
}
