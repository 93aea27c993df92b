import { DmError } from '../errors.js'
import { parsePublicKeyBase64 } from '../crypto/keys.js'

/*
 * The fleet-wide revocation list: a version under the reserved name
 * REVOCATIONS_NAME, signed by the network key, replicated like any file and,
 * like any file, replaced only by a newer one. Its content is JSON:
 *
 *   { "signers": [ { "key": "<base64 Ed25519 key>", "reason": "...", "revokedAtMs": 1764… } ],
 *     "nodes":   [ { "key": "<base64 identity key>", "reason": "...", "revokedAtMs": 1764… } ] }
 *
 * A revoked signer's versions are refused (ERR_REVOKED), and a held version it
 * signed fails closed: its file is removed and any valid version of the name
 * replaces it, whatever its timestamp. A revoked node is refused at admission
 * and disconnected.
 */

/** The reserved name of the revocation list; writable only with the network key. */
export const REVOCATIONS_NAME = '_dm/revocations'
/** Entries per list, each section: bounded, so a list cannot cost unbounded memory to parse or hold. */
export const MAX_REVOKED = 10_000
const MAX_REASON_CHARS = 256

export interface Revocation {
  key: Uint8Array
  reason: string
  revokedAtMs: number
}

export interface RevocationList {
  signers: Revocation[]
  nodes: Revocation[]
}

export const NO_REVOCATIONS: RevocationList = { signers: [], nodes: [] }

/** Parses a list's content; throws DmError('ERR_DECODE') on anything malformed, naming the entry. */
export function parseRevocations (content: Uint8Array): RevocationList {
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(content).toString('utf8'))
  } catch (err) {
    throw new DmError('ERR_DECODE', `revocation list is not JSON: ${(err as Error).message}`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new DmError('ERR_DECODE', 'revocation list must be a JSON object')
  const section = (field: 'signers' | 'nodes'): Revocation[] => {
    const list = (doc as Record<string, unknown>)[field] ?? []
    if (!Array.isArray(list) || list.length > MAX_REVOKED) throw new DmError('ERR_DECODE', `revocation list: "${field}" must be a list of at most ${MAX_REVOKED} entries`)
    return list.map((e: unknown, i) => {
      const entry = e as { key?: unknown, reason?: unknown, revokedAtMs?: unknown }
      const key = typeof entry?.key === 'string' ? parsePublicKeyBase64(entry.key) : 'is missing'
      if (typeof key === 'string') throw new DmError('ERR_DECODE', `revocation list: ${field}[${i}].key ${key}`)
      const reason = typeof entry.reason === 'string' ? entry.reason.slice(0, MAX_REASON_CHARS) : ''
      const revokedAtMs = typeof entry.revokedAtMs === 'number' && Number.isSafeInteger(entry.revokedAtMs) ? entry.revokedAtMs : 0
      return { key, reason, revokedAtMs }
    })
  }
  return { signers: section('signers'), nodes: section('nodes') }
}

/** The list as JSON content, as `dm revoke` signs it. */
export function encodeRevocations (list: RevocationList): Buffer {
  const entry = (r: Revocation): object => ({ key: Buffer.from(r.key).toString('base64'), reason: r.reason, revokedAtMs: r.revokedAtMs })
  return Buffer.from(JSON.stringify({ signers: list.signers.map(entry), nodes: list.nodes.map(entry) }, null, 2) + '\n')
}

/** Looks a key up in a section: the reason, or undefined when it is not revoked. */
export function revokedReason (section: readonly Revocation[], key: Uint8Array): string | undefined {
  const hit = section.find(r => Buffer.from(r.key).equals(key))
  return hit === undefined ? undefined : (hit.reason === '' ? 'revoked' : hit.reason)
}
