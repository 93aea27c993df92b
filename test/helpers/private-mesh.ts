import fs from 'node:fs'
import path from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { CertKind, encodeCertificate, signCertificate } from '../../src/format/certificate.ts'
import type { newSigningKey, TestNode } from './cluster.ts'

/*
 * A private mesh between test daemons: membership certificates signed by a
 * network key, written next to each node's config, as `dm network admit` does.
 */

const DAY = 86_400_000

export type NetworkKey = ReturnType<typeof newSigningKey>

/** The raw identity key behind a node's peer id. */
export function nodeKey (node: TestNode): Uint8Array {
  return new Uint8Array(peerIdFromString(node.peerId).publicKey?.raw as Uint8Array)
}

/** Writes a membership certificate for `node` (valid around now unless told) and returns its path. */
export function admit (node: TestNode, network: NetworkKey, over: { notBeforeMs?: number, notAfterMs?: number, issuer?: NetworkKey } = {}): string {
  const issuer = over.issuer ?? network
  const now = Date.now()
  const cert = signCertificate({
    kind: CertKind.Membership, subject: nodeKey(node), name: node.name, notBeforeMs: over.notBeforeMs ?? now - DAY, notAfterMs: over.notAfterMs ?? now + DAY, issuer: issuer.publicKey
  }, issuer.privateKey)
  const file = path.join(node.dir, 'member.cert')
  fs.writeFileSync(file, encodeCertificate(cert))
  return file
}

/** The [network] lines of a private mesh, with `more` (e.g. a [namespaces] table) after them. */
export function privateMesh (network: NetworkKey, certificate: string | undefined, more = ''): string {
  return [`key = "${network.base64}"`, certificate !== undefined ? `certificate = ${JSON.stringify(certificate)}` : '', more].join('\n')
}
