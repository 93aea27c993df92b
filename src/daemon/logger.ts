import { pino, type Logger } from 'pino'
import type { LogFormat, LogLevel } from '../config/config.js'

/** JSON field names are stable: name, signer, timestampMs, source, code, reason, peer, err. */

export async function createLogger (level: LogLevel, format: LogFormat = 'auto'): Promise<Logger> {
  // Epoch milliseconds, pino's default: an ISO time would load the time zone data (ICU) into every daemon for good.
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.epochTime }
  if (format === 'json' || (format === 'auto' && process.stdout.isTTY !== true)) return pino(options)
  // Loaded only when used, in this thread (no worker), so JSON daemons do not pay for it.
  const { default: pretty } = await import('pino-pretty')
  return pino(options, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid' }))
}
