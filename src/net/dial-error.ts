import { describeError } from '../errors.js'

/** Why a dial failed, for scripts (`dm peers --json`, lastErrorCode); the words are for people. */
export type DialErrorCode = 'WRONG_PEER' | 'CONNECTION_REFUSED' | 'UNREACHABLE' | 'TIMEOUT' | 'OTHER'

export interface DialError {
  code: DialErrorCode
  /** A summary an operator can act on, then libp2p's own text. */
  words: string
}

/** Sorts a libp2p dial error (or each of an AggregateError's) into what an operator would check first. */
export function describeDialError (err: unknown): DialError {
  const text = describeError(err)
  const errs = (err as { errors?: unknown[] })?.errors
  const detail = Array.isArray(errs) && errs.length > 0 ? errs.map(describeError).join('; ') : text
  if (/does not match expected|unexpected peer|peer id/i.test(detail)) return { code: 'WRONG_PEER', words: `a different node answers at this address (wrong peer id in the address?): ${detail}` }
  if (/ECONNREFUSED/.test(detail)) return { code: 'CONNECTION_REFUSED', words: `connection refused (nothing listens on that port?): ${detail}` }
  if (/EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/.test(detail)) return { code: 'UNREACHABLE', words: `host unreachable: ${detail}` }
  if (/abort|timeout|timed out/i.test(detail)) return { code: 'TIMEOUT', words: `no answer in time (firewall, or a wrong host?): ${detail}` }
  return { code: 'OTHER', words: detail }
}
