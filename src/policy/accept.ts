import { createHash } from 'node:crypto'
import type { ErrorCode } from '../errors.js'
import {
  EMPTY_SHA256, MAX_CONTENT_BYTES, VersionKind, compareVersions, isExpired, signatureIsValid, versionId,
  type SignedVersion
} from '../format/version.js'
import { printable } from '../format/names.js'
import { namespaceCertProblem, namespaceOf, type NamespaceTrust } from './namespaces.js'
import { isNodeReportName, membershipCertProblem, nodeReportOwner } from './node-reports.js'
import { REVOCATIONS_NAME, revokedReason, type RevocationList } from './revocation.js'

/*
 * The acceptance policy: the one place that decides whether a version is
 * believed, wherever it came from (local publish, eager push, anti-entropy).
 * Pure: the clock is passed in, nothing is read from disk or network.
 */

export interface PolicyContext extends NamespaceTrust {
  networkId: Uint8Array
  /** The fleet-wide revocation list in force (from the held REVOCATIONS_NAME version); none on an open mesh. */
  revocations?: RevocationList
  /** file name -> raw public keys allowed to sign it */
  allowlist: ReadonlyMap<string, readonly Uint8Array[]>
  maxClockSkewMs: number
  nowMs: number
}

/** What the policy needs to know about the version already held for a name. */
export interface HeldVersion {
  timestampMs: number
  id: Uint8Array
  /** False when its content is missing on disk: the same version may then be taken again. Absent means present. */
  present?: boolean
}

/** A held version as the rules below see it: which name, and who signed it. */
export interface HeldSigned extends HeldVersion {
  name: string
  version: { signer: Uint8Array, expiresAtMs: number }
}

export type Verdict =
  | { ok: true, id: Uint8Array }
  | Refusal

export interface Refusal {
  ok: false
  code: ErrorCode
  /** One human sentence. */
  reason: string
  /** True when the same version may be accepted later (a future timestamp). */
  retryable: boolean
}

function refuse (code: ErrorCode, reason: string, retryable = false): Refusal {
  return { ok: false, code, reason, retryable }
}

type Listing = Pick<PolicyContext, 'allowlist' | 'namespaces' | 'networkKey' | 'revocations'>

/** The keys that may sign `name`: its [files] entry, or the owner its namespace path names. */
export function signersFor (ctx: Listing, name: string): readonly Uint8Array[] | undefined {
  // The reserved names under _dm/ are the network's, whatever [files] says: the
  // revocation list is the network key's alone, a node report its node's alone.
  if (name === REVOCATIONS_NAME) return ctx.networkKey !== undefined ? [ctx.networkKey] : undefined
  if (isNodeReportName(name)) {
    const owner = nodeReportOwner(name)
    return ctx.networkKey !== undefined && typeof owner !== 'string' ? [owner] : undefined
  }
  const listed = ctx.allowlist.get(name)
  if (listed !== undefined) return listed
  const ns = namespaceOf(ctx, name)
  return ns !== undefined && 'owner' in ns ? [ns.owner] : undefined
}

/** Whether `name` may be held at all: listed in [files], or a well-formed name under a declared namespace. */
export function isListed (ctx: Listing, name: string): boolean {
  return signersFor(ctx, name) !== undefined
}

/** Whether `signer` is listed for `name` now, and not revoked fleet-wide. */
export function signerAllowed (ctx: Listing, name: string, signer: Uint8Array): boolean {
  if (signerRevoked(ctx, name, signer) !== undefined) return false
  return signersFor(ctx, name)?.some(k => Buffer.from(k).equals(signer)) === true
}

/**
 * Why `signer` is revoked for `name` by the fleet-wide list, or undefined: a
 * revoked signer key for any name, and for a node report also a revoked node.
 */
export function signerRevoked (ctx: Pick<PolicyContext, 'revocations'>, name: string, signer: Uint8Array): string | undefined {
  if (ctx.revocations === undefined) return undefined
  return revokedReason(ctx.revocations.signers, signer) ?? (isNodeReportName(name) ? revokedReason(ctx.revocations.nodes, signer) : undefined)
}

/**
 * The revocation rule: a held version whose signer is no longer listed for its
 * name neither blocks a newer-signed or older-signed replacement nor is
 * offered to peers. What is held "for ordering" is then nothing.
 */
export function effectiveHeld<H extends HeldSigned> (ctx: Listing, held: H | undefined): H | undefined {
  return held !== undefined && signerAllowed(ctx, held.name, held.version.signer) ? held : undefined
}

/**
 * The one order between versions of a name: a candidate replaces what is held
 * when it is later in the total order (timestamp, then version id), or is the
 * same version whose content went missing.
 */
export function supersedes (candidate: HeldVersion, held: HeldVersion | undefined): boolean {
  if (held === undefined) return true
  const order = compareVersions(candidate, held)
  return order > 0 || (order === 0 && held.present === false)
}

/**
 * Whether a version found on disk at start may stay held: signed for this
 * network, its signature valid, and its signer still listed if its name is.
 * Not checkHeader: an expired or future-dated version stays held (it still
 * refuses older ones), and a name no longer listed is kept and shown as such.
 */
export function mayStayHeld (ctx: Pick<PolicyContext, 'networkId' | 'allowlist' | 'namespaces' | 'networkKey'>, v: SignedVersion): true | string {
  if (!Buffer.from(v.networkId).equals(ctx.networkId)) return 'it was signed for another network id'
  if (isListed(ctx, v.name) && !signerAllowed(ctx, v.name, v.signer)) return 'its signer is not listed for this name'
  if (!signatureIsValid(v)) return 'its signature is not valid'
  const cert = certProblem(v, ctx)
  return cert === undefined ? true : `${cert.reason} (${cert.code})`
}

/** Why a name has no signers: a malformed namespaced or reserved name, or simply not listed. */
function notListedReason (ctx: Listing, name: string): string {
  if (isNodeReportName(name)) {
    const owner = nodeReportOwner(name)
    return typeof owner === 'string' ? owner : `"${printable(name)}" is a node report, and this mesh is open (no [network] key)`
  }
  const ns = namespaceOf(ctx, name)
  return ns !== undefined && 'problem' in ns ? ns.problem : `"${printable(name)}" is not listed in [files]`
}

/**
 * A node report needs its node's membership certificate, a name under a
 * declared namespace its signer's namespace certificate; any other name none.
 */
function certProblem (v: SignedVersion, ctx: Listing): { code: ErrorCode, reason: string } | undefined {
  if (isNodeReportName(v.name)) return ctx.networkKey === undefined ? undefined : membershipCertProblem(v, ctx.networkKey)
  if (ctx.allowlist.has(v.name)) return undefined
  const ns = namespaceOf(ctx, v.name)
  return ns === undefined ? undefined : namespaceCertProblem(v, ns.namespace, ctx)
}

/** What a node advertises to its peers: held with its content, not expired, not revoked. */
export function advertisable (ctx: Pick<PolicyContext, 'allowlist' | 'namespaces' | 'networkKey' | 'nowMs'>, held: HeldSigned): boolean {
  return held.present !== false && !isExpired(held.version, ctx.nowMs) && effectiveHeld(ctx, held) !== undefined
}

/**
 * Checks everything that can be checked without the content. Cheap checks come
 * first, so a flood of stale or unlisted announcements costs no signature checks.
 */
export function checkHeader (v: SignedVersion, held: HeldVersion | undefined, ctx: PolicyContext): Verdict {
  if (!Buffer.from(v.networkId).equals(ctx.networkId)) {
    return refuse('ERR_WRONG_NETWORK', `version of "${printable(v.name)}" was signed for another network id`)
  }
  const signers = signersFor(ctx, v.name)
  if (signers === undefined) {
    return refuse('ERR_NAME_NOT_ALLOWED', notListedReason(ctx, v.name))
  }
  const revoked = signerRevoked(ctx, v.name, v.signer)
  if (revoked !== undefined) {
    return refuse('ERR_REVOKED', `signer ${Buffer.from(v.signer).toString('base64')} is revoked by the network's revocation list (${revoked})`)
  }
  if (!signerAllowed(ctx, v.name, v.signer)) {
    return refuse('ERR_SIGNER_NOT_ALLOWED', `signer ${Buffer.from(v.signer).toString('base64')} is not listed for "${printable(v.name)}"`)
  }
  if (v.size > MAX_CONTENT_BYTES) {
    return refuse('ERR_TOO_LARGE', `"${printable(v.name)}" is ${v.size} bytes; the limit is ${MAX_CONTENT_BYTES}`)
  }
  if (v.kind === VersionKind.Tombstone && (v.size !== 0 || !Buffer.from(v.sha256).equals(EMPTY_SHA256))) {
    return refuse('ERR_CONTENT_MISMATCH', `tombstone for "${printable(v.name)}" declares content`)
  }
  if (v.expiresAtMs !== 0 && v.expiresAtMs <= v.timestampMs) {
    return refuse('ERR_EXPIRED', `version of "${printable(v.name)}" expires before it was signed`)
  }
  if (v.expiresAtMs !== 0 && v.expiresAtMs <= ctx.nowMs) {
    return refuse('ERR_EXPIRED', `version of "${printable(v.name)}" expired at ${iso(v.expiresAtMs)}`)
  }
  const id = versionId(v)
  if (held !== undefined && !supersedes({ timestampMs: v.timestampMs, id }, held)) {
    if (compareVersions({ timestampMs: v.timestampMs, id }, held) === 0) return refuse('ERR_ALREADY_HELD', `this version of "${printable(v.name)}" is already held`)
    return refuse('ERR_STALE', held.timestampMs === v.timestampMs
      ? `"${printable(v.name)}" has another version with the same timestamp that wins the tie-break`
      : `"${printable(v.name)}" signed at ${iso(v.timestampMs)} is not newer than the held version (${iso(held.timestampMs)})`)
  }
  // The signature is checked before the clock: a future-dated refusal says
  // "retryable", which must never be said of a forgery.
  if (!signatureIsValid(v)) {
    return refuse('ERR_BAD_SIGNATURE', `signature on "${printable(v.name)}" is not valid`)
  }
  // After the signature, like it: a certificate costs a signature check too.
  const cert = certProblem(v, ctx)
  if (cert !== undefined) return refuse(cert.code, cert.reason)
  if (v.timestampMs > ctx.nowMs + ctx.maxClockSkewMs) {
    return refuse('ERR_FUTURE_TIMESTAMP', `"${printable(v.name)}" is dated ${iso(v.timestampMs)}, more than ${ctx.maxClockSkewMs} ms ahead of this clock; refused for now`, true)
  }
  return { ok: true, id }
}

/** Checks content against the signed size and hash. */
export function checkContent (v: SignedVersion, content: Uint8Array): Verdict {
  if (content.length !== v.size) return checkDigest(v, content.length, undefined)
  return checkDigest(v, content.length, createHash('sha256').update(content).digest())
}

/**
 * Rules 11 and 12 for content hashed elsewhere (staged while it arrived, or
 * read from a file in one pass): its size, then its SHA-256.
 */
export function checkDigest (v: SignedVersion, size: number, sha256: Uint8Array | undefined): Verdict {
  if (size !== v.size) {
    return refuse('ERR_CONTENT_MISMATCH', `"${printable(v.name)}" content is ${size} bytes; the signature says ${v.size}`)
  }
  if (sha256 === undefined || !Buffer.from(sha256).equals(v.sha256)) {
    return refuse('ERR_CONTENT_MISMATCH', `"${printable(v.name)}" content does not match the signed SHA-256`)
  }
  return { ok: true, id: versionId(v) }
}

/** Both checks, for callers that already hold the content. */
export function checkVersion (v: SignedVersion, content: Uint8Array, held: HeldVersion | undefined, ctx: PolicyContext): Verdict {
  const header = checkHeader(v, held, ctx)
  if (!header.ok) return header
  const body = checkContent(v, content)
  return body.ok ? header : body
}

function iso (ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString()
}
