import type { Health, HealthCode } from '../api/wire.js'

/** What the node's health is judged on; all cheap to read. */
export interface HealthInputs {
  peersConnected: number
  /** Bootstrap addresses configured plus members remembered: someone we should be able to reach. */
  peersExpected: number
  /** The last dial error per unreachable member, for the reason line. */
  lastDialError: string | undefined
  /** Held versions whose content is missing on disk and waits for a fetch. */
  missing: number
  /** This node's membership certificate window, on a private mesh. */
  certificate?: { notBeforeMs: number, notAfterMs: number }
  /** Now, for the certificate's window. */
  nowMs?: number
}

/** `dm status` warns this long before this node's membership certificate expires. */
export const CERT_WARNING_MS = 14 * 86_400_000

/**
 * Degraded is a node that cannot do its job and would otherwise look healthy:
 * no peer while it has someone to reach, or held files it cannot serve.
 * `dm status`, the systemd status line and the dm_health_degraded metric all
 * show this one judgement.
 */
export function judgeHealth (h: HealthInputs): Health {
  const reasons: Finding[] = []
  if (h.peersConnected === 0 && h.peersExpected > 0) {
    reasons.push(['NO_PEER_CONNECTED', `no peer connected though ${h.peersExpected} ${h.peersExpected === 1 ? 'is' : 'are'} known${h.lastDialError !== undefined ? ` (last dial error: ${h.lastDialError})` : ''}`])
  }
  if (h.missing > 0) reasons.push(['FILES_MISSING', `${h.missing} held file${h.missing === 1 ? ' is' : 's are'} missing on disk and wait${h.missing === 1 ? 's' : ''} to be fetched`])
  const warnings: Finding[] = []
  if (h.certificate !== undefined) {
    const now = h.nowMs ?? Date.now()
    const { notBeforeMs, notAfterMs } = h.certificate
    const renew = 'renew it (dm network admit), then systemctl reload data-mesher'
    if (now >= notAfterMs) reasons.push(['CERT_EXPIRED', `this node's membership certificate expired at ${iso(notAfterMs)}, so no peer admits it: ${renew}`])
    else if (now < notBeforeMs) reasons.push(['CERT_NOT_YET_VALID', `this node's membership certificate is not valid until ${iso(notBeforeMs)}, so no peer admits it yet (is this clock right?)`])
    else if (notAfterMs - now <= CERT_WARNING_MS) warnings.push(['CERT_EXPIRING', `this node's membership certificate expires at ${iso(notAfterMs)}, in ${Math.ceil((notAfterMs - now) / 86_400_000)} day(s): ${renew}`])
  }
  return {
    state: reasons.length === 0 ? 'ok' : 'degraded',
    reasons: reasons.map(([, sentence]) => sentence),
    reasonCodes: reasons.map(([code]) => code),
    ...(warnings.length > 0 ? { warnings: warnings.map(([, sentence]) => sentence), warningCodes: warnings.map(([code]) => code) } : {})
  }
}

/** A reason or a warning: its stable code and its sentence. */
type Finding = [HealthCode, string]

function iso (ms: number): string {
  return new Date(ms).toISOString()
}
