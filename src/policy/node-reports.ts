import { CertKind, type CertRefusal } from '../format/certificate.js'
import { printable } from '../format/names.js'
import type { SignedVersion } from '../format/version.js'
import { attachedCertProblem, ownerSegment, parseOwnerSegment } from './namespaces.js'

/*
 * The reserved namespace of node reports (docs/PROTOCOL.md section 14): on a
 * private mesh, `_dm/nodes/<identity key, unpadded base64url>` is writable by
 * that node identity alone, and only while the version carries the node's
 * membership certificate from the network key, valid at signing time. The
 * certificate a node already holds for admission is what lets it publish
 * about itself: no config, no extra key. On an open mesh the names are
 * refused like any unlisted name.
 */

export const NODES_NAMESPACE = '_dm/nodes'

/** Whether `name` lies in the reserved namespace (well formed or not). */
export function isNodeReportName (name: string): boolean {
  return name.startsWith(NODES_NAMESPACE + '/')
}

/** The name a node with identity key `key` publishes its report under. */
export function nodeReportName (key: Uint8Array): string {
  return `${NODES_NAMESPACE}/${ownerSegment(key)}`
}

/** The identity key a report name names, or why it names none. Only for names where isNodeReportName holds. */
export function nodeReportOwner (name: string): Uint8Array | string {
  const rest = name.slice(NODES_NAMESPACE.length + 1)
  if (rest.includes('/')) return `"${printable(name)}" is not ${NODES_NAMESPACE}/<node identity key>: reports have no sub-paths`
  const owner = parseOwnerSegment(rest)
  return typeof owner === 'string' ? `${owner} in "${printable(name)}" (names in ${NODES_NAMESPACE} are ${NODES_NAMESPACE}/<node identity key>)` : owner
}

/** Whether the report carries its signer's membership certificate from the network key, valid at its signing time. */
export function membershipCertProblem (v: SignedVersion, networkKey: Uint8Array): CertRefusal | undefined {
  return attachedCertProblem(v, { kind: CertKind.Membership, issuers: [networkKey] },
    `is a node report and needs its node's membership certificate (dm network admit) attached`)
}
