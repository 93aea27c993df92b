import { DmError } from '../errors.js'
import { Reader, Writer } from './binary.js'
import { MAX_ATTACHMENT_BYTES } from './version.js'

/*
 * The envelope's attachments area (docs/PROTOCOL.md sections 4 and 11.2): unsigned,
 * self-authenticating extras, as a list of `type u8 · length u16 · bytes`.
 * They are outside the signature and the version id, so a relay can strip
 * or add them; each must prove itself (a certificate carries its issuer's
 * signature). The area is parsed only when a rule needs it: a version that
 * needs no attachment is never refused for its attachments.
 */

/** Append-only. Unknown types are skipped, so new ones can be added without breaking old readers. */
export enum AttachmentType {
  /** A certificate (section 11) vouching for the version's signer. */
  Certificate = 1
}

export interface Attachment {
  type: number
  bytes: Uint8Array
}

export function encodeAttachments (items: readonly Attachment[]): Buffer {
  const w = new Writer()
  for (const a of items) w.u8(a.type).bytes16(a.bytes)
  const out = w.finish()
  if (out.length > MAX_ATTACHMENT_BYTES) throw new DmError('ERR_TOO_LARGE', `attachments are ${out.length} bytes; the limit is ${MAX_ATTACHMENT_BYTES}`)
  return out
}

/** Parses the area; ERR_DECODE when an item runs past its end. */
export function decodeAttachments (area: Uint8Array): Attachment[] {
  const r = new Reader(area, 'attachments')
  const out: Attachment[] = []
  while (r.remaining > 0) out.push({ type: r.u8(), bytes: r.bytes16(MAX_ATTACHMENT_BYTES) })
  return out
}

/** The payloads of every attachment of `type`, in order. */
export function attachmentsOf (area: Uint8Array, type: AttachmentType): Uint8Array[] {
  return decodeAttachments(area).filter(a => a.type === type).map(a => a.bytes)
}

/** The version with `certs` attached after any attachments it already has; the signature is untouched. */
export function withCertificates<V extends { attachments: Uint8Array }> (v: V, certs: readonly Uint8Array[]): V {
  const items = [...decodeAttachments(v.attachments), ...certs.map(bytes => ({ type: AttachmentType.Certificate, bytes }))]
  return { ...v, attachments: new Uint8Array(encodeAttachments(items)) }
}
