import type { Config } from './config.js'

/**
 * What a reload (SIGHUP) can apply at once: [files], log_level and
 * max_clock_skew_ms. Returns the keys whose change waits for a restart, so the
 * daemon can say so instead of silently ignoring them.
 */
export function changesNeedingRestart (running: Config, next: Config): string[] {
  const changed: string[] = []
  const differs = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b)
  if (next.stateDir !== running.stateDir) changed.push('state_dir')
  if (differs(next.network, running.network)) changed.push('network')
  if (differs(next.tuning, running.tuning)) changed.push('network (tuning)')
  if (next.api.socket !== running.api.socket) changed.push('api.socket')
  if (next.metrics.listen !== running.metrics.listen) changed.push('metrics.listen')
  if (differs(next.hooks, running.hooks)) changed.push('hooks')
  return changed
}
