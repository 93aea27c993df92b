import { attachmentsOf, AttachmentType } from '../format/attachments.js'
import { CertKind, decodeCertificate, verifyCertificate, type CertExpectation, type CertRefusal } from '../format/certificate.js'
import { DmError } from '../errors.js'
import { printable } from '../format/names.js'
import type { SignedVersion } from '../format/version.js'

/*
 * Signed namespaces (docs/PROTOCOL.md section 11.3): a name
 * `<namespace>/<signer key, unpadded base64url>[/...]` under a declared
 * namespace is writable by that key alone, and only while it shows a
 * namespace certificate from a trusted issuer. The path names the owner, so
 * no per-name allowlist entry is needed.
 */

export interface NamespaceTrust {
  /** Declared namespaces: prefix -> issuer keys trusted for it besides the network key. */
  namespaces?: ReadonlyMap<string, readonly Uint8Array[]>
  /** The network key's public half ([network] key); absent on an open mesh. */
  networkKey?: Uint8Array
}

/** Length of a 32-byte key in unpadded base64url. */
const OWNER_SEGMENT_CHARS = 43

export type NamespaceMatch =
  | { namespace: string, owner: Uint8Array }
  | { namespace: string, problem: string }

/** The key written as a name segment: unpadded base64url, as upstream names it. */
export function ownerSegment (key: Uint8Array): string {
  return Buffer.from(key).toString('base64url')
}

/**
 * The key a name segment spells, or why it is none: 43 characters of
 * unpadded base64url, canonical only (one key, one spelling, so one owner
 * cannot hold two directories).
 */
export function parseOwnerSegment (segment: string): Uint8Array | string {
  const key = Buffer.from(segment, 'base64url')
  if (segment.length !== OWNER_SEGMENT_CHARS || key.length !== 32 || key.toString('base64url') !== segment) {
    return `"${printable(segment)}" is not a key in unpadded base64url`
  }
  return new Uint8Array(key)
}

/** The declared namespace `name` lies under, with the key its path names; undefined when none. */
export function namespaceOf (trust: NamespaceTrust, name: string): NamespaceMatch | undefined {
  if (trust.namespaces === undefined || trust.namespaces.size === 0) return undefined
  for (const ns of trust.namespaces.keys()) {
    if (name === ns) return { namespace: ns, problem: `"${printable(name)}" is a namespace; names in it are ${ns}/<signer key in base64url>/...` }
    if (!name.startsWith(ns + '/')) continue
    const owner = parseOwnerSegment(name.slice(ns.length + 1).split('/')[0])
    if (typeof owner === 'string') return { namespace: ns, problem: `${owner} in "${printable(name)}" (names in namespace "${ns}" start with their signer's key)` }
    return { namespace: ns, owner }
  }
  return undefined
}

/** The keys trusted to certify signers for namespace `ns`: the network key, then its listed issuers. */
export function issuersFor (trust: NamespaceTrust, ns: string): Uint8Array[] {
  return [...(trust.networkKey !== undefined ? [trust.networkKey] : []), ...(trust.namespaces?.get(ns) ?? [])]
}

/**
 * Whether the version carries a namespace certificate for its signer and
 * namespace, from a trusted issuer, valid at the version's signing time.
 */
export function namespaceCertProblem (v: SignedVersion, ns: string, trust: NamespaceTrust): CertRefusal | undefined {
  return attachedCertProblem(v, { kind: CertKind.Namespace, issuers: issuersFor(trust, ns), name: ns },
    `is in namespace "${printable(ns)}" and needs a namespace certificate for its signer (dm cert issue; dm publish --cert)`)
}

/**
 * Whether one of the certificates attached to `v` vouches for its signer as
 * `want` says, at the version's signing time. Several may ride along (a
 * renewal); one that passes is enough, and otherwise the first one's refusal
 * is reported. `needs` completes "<name> ..." when none is attached.
 */
export function attachedCertProblem (v: SignedVersion, want: Omit<CertExpectation, 'subject' | 'atMs'>, needs: string): CertRefusal | undefined {
  let certs: Uint8Array[]
  try {
    certs = attachmentsOf(v.attachments, AttachmentType.Certificate)
  } catch (err) {
    return { code: 'ERR_CERT_INVALID', reason: `the attachments do not decode (${(err as Error).message})` }
  }
  if (certs.length === 0) return { code: 'ERR_CERT_MISSING', reason: `"${printable(v.name)}" ${needs}` }
  let first: CertRefusal | undefined
  for (const bytes of certs) {
    let problem: CertRefusal | undefined
    try {
      problem = verifyCertificate(decodeCertificate(bytes), { ...want, subject: v.signer, atMs: v.timestampMs })
    } catch (err) {
      problem = { code: 'ERR_CERT_INVALID', reason: `does not decode (${err instanceof DmError ? err.message : String(err)})` }
    }
    if (problem === undefined) return undefined
    first ??= problem
  }
  return { code: (first as CertRefusal).code, reason: `the certificate on "${printable(v.name)}" ${(first as CertRefusal).reason}` }
}
