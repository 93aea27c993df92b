import fs from 'node:fs'
import type { PeerId } from '@libp2p/interface'
import { DmError, describeError, type ErrorCode } from '../errors.js'
import { CertKind, decodeCertificate, verifyCertificate, type Certificate } from '../format/certificate.js'

/*
 * Who is a member of a private mesh: a peer's membership certificate judged
 * against the network key, its peer id's key, the clock and the revocation
 * list; and this node's own certificate, checked when it is loaded.
 */

/** The raw Ed25519 key behind a peer id, or undefined for any other kind (never a member). */
export function peerKey (peer: PeerId): Uint8Array | undefined {
  return peer.type === 'Ed25519' ? new Uint8Array(peer.publicKey.raw) : undefined
}

/** Why a node identity may not be a member although its certificate is valid (the revocation list), or undefined. */
export type RevokedCheck = (nodeKey: Uint8Array) => string | undefined

export interface MembershipTrust {
  networkKey: Uint8Array
  nowMs: number
  revoked?: RevokedCheck
}

export type Judgement = { ok: true, cert: Certificate } | { ok: false, code: ErrorCode, reason: string }

/** Whether the certificate frame a peer sent admits the node whose key is `subject`. */
export function judgeMembership (frame: Uint8Array, subject: Uint8Array | undefined, trust: MembershipTrust): Judgement {
  if (frame.length === 0) return { ok: false, code: 'ERR_NOT_ADMITTED', reason: 'sent no membership certificate ([network] certificate is not set there)' }
  if (subject === undefined) return { ok: false, code: 'ERR_NOT_ADMITTED', reason: 'has a peer id that is not an Ed25519 key' }
  let cert: Certificate
  try {
    cert = decodeCertificate(frame)
  } catch (err) {
    return { ok: false, code: 'ERR_CERT_INVALID', reason: `sent a membership certificate that does not decode (${describeError(err)})` }
  }
  const problem = verifyCertificate(cert, { kind: CertKind.Membership, subject, issuers: [trust.networkKey], atMs: trust.nowMs })
  if (problem !== undefined) return { ok: false, code: problem.code, reason: `sent a membership certificate that ${problem.reason}` }
  const revoked = trust.revoked?.(subject)
  if (revoked !== undefined) return { ok: false, code: 'ERR_REVOKED', reason: `is revoked by the network's revocation list (${revoked})` }
  return { ok: true, cert }
}

/** Largest certificate file read: a certificate is under 430 bytes. */
const MAX_CERT_FILE_BYTES = 4096

/**
 * Reads this node's membership certificate ([network] certificate) and checks
 * everything that cannot fix itself: that it decodes, is a membership
 * certificate for this node's identity and is signed by the network key.
 * Its window is not checked here: an expired certificate is a warning and a
 * degraded status, not a daemon that will not start.
 */
export function loadOwnCertificate (file: string, networkKey: Uint8Array, identityKey: Uint8Array): { cert: Certificate, bytes: Uint8Array } {
  if (file === '') throw new DmError('ERR_CONFIG', 'network.certificate: [network] key is set, so this node needs a membership certificate (dm network admit) to join the private mesh')
  let bytes: Buffer
  try {
    const st = fs.statSync(file)
    if (st.size > MAX_CERT_FILE_BYTES) throw new DmError('ERR_CONFIG', `network.certificate: ${file} is larger than any certificate`)
    bytes = fs.readFileSync(file)
  } catch (err) {
    if (err instanceof DmError) throw err
    throw new DmError('ERR_CONFIG', `network.certificate: ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeError(err)}`)
  }
  let cert: Certificate
  try {
    cert = decodeCertificate(bytes)
  } catch (err) {
    throw new DmError('ERR_CERT_INVALID', `network.certificate: ${file} is not a certificate (${describeError(err)})`)
  }
  // Checked at its own start, so no window can fail: only the window is left for later.
  const problem = verifyCertificate(cert, { kind: CertKind.Membership, subject: identityKey, issuers: [networkKey], atMs: cert.notBeforeMs })
  if (problem !== undefined) {
    const hint = problem.reason === 'vouches for another key' ? ' (another node\'s certificate? dm id prints this node\'s peer id)' : ''
    throw new DmError(problem.code, `network.certificate: ${file} ${problem.reason}${hint}`)
  }
  return { cert, bytes }
}

