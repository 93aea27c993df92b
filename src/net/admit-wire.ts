import { DmError, type ErrorCode } from '../errors.js'
import { Reader, Writer } from '../format/binary.js'
import { printable } from '../format/names.js'

/* The admission protocol's frames (docs/PROTOCOL.md section 12): the protocol id, the frame bound and the verdict. */

export const PROTOCOL_ADMIT = '/data-mesher/admit/1.0.0'

/** Largest admission frame: a certificate is at most 421 bytes, a verdict 325. */
export const MAX_ADMIT_FRAME_BYTES = 1024
/** Longest refusal reason sent to a peer (it ends up in the peer's log). */
const MAX_REASON_BYTES = 256
const MAX_CODE_BYTES = 64

/** A side's judgement of the other's certificate, as sent in the verdict frame. */
export type AdmitVerdict = { ok: true } | { ok: false, code: ErrorCode | string, reason: string }

/** verdict = u8 0 (admitted) | u8 1, string16 code (ERR_*), string16 reason */
export function encodeVerdict (v: AdmitVerdict): Buffer {
  const w = new Writer().u8(v.ok ? 0 : 1)
  if (!v.ok) w.string16(v.code).string16(truncateUtf8(v.reason, MAX_REASON_BYTES))
  return w.finish()
}

/** Decodes a peer's verdict; its reason is made printable before anyone logs it. */
export function decodeVerdict (frame: Uint8Array): AdmitVerdict {
  const r = new Reader(frame, 'admission verdict')
  const status = r.u8()
  if (status === 0) { r.end(); return { ok: true } }
  if (status !== 1) throw new DmError('ERR_DECODE', `admission verdict has unknown status ${status}`)
  const code = r.string16(MAX_CODE_BYTES)
  const reason = r.string16(MAX_REASON_BYTES)
  r.end()
  if (!/^ERR_[A-Z_]+$/.test(code)) throw new DmError('ERR_DECODE', 'admission verdict has a code that is not ERR_*')
  return { ok: false, code, reason: printable(reason) }
}

function truncateUtf8 (s: string, max: number): string {
  let out = s
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1)
  return out
}
