import { DmError } from '../errors.js'

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }

/**
 * Parses a duration such as `30s`, `4h`, `90d` or `1h30m` into whole seconds;
 * a plain number is seconds. Throws ERR_USAGE naming the option.
 */
export function parseDuration (text: string, option: string): number {
  const t = text.trim()
  let seconds = 0
  if (/^\d+$/.test(t)) seconds = Number(t)
  else if (/^(\d+[smhdw])+$/.test(t)) {
    for (const [, n, unit] of t.matchAll(/(\d+)([smhdw])/g)) seconds += Number(n) * UNIT_SECONDS[unit]
  } else {
    throw new DmError('ERR_USAGE', `--${option} ${JSON.stringify(text)}: give seconds or a duration such as 30s, 15m, 4h, 90d, 2w or 1h30m`)
  }
  if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new DmError('ERR_USAGE', `--${option} must be above 0`)
  return seconds
}
