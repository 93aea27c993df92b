import { pino, type Logger } from 'pino'
import type { LogLevel } from '../config/config.js'

/**
 * JSON logs on stdout (journald keeps them). Field names are stable:
 * name, signer, timestampMs, source, code, reason, peer, err.
 */
export function createLogger (level: LogLevel): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
}
