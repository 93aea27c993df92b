/** Warnings go to stderr, one line each, so stdout stays parseable. */
export function warn (message: string): void {
  process.stderr.write(`dm: warning: ${message}\n`)
}

export function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** Left-aligned columns for terminal tables. */
export function table (rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length)))
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ')).join('\n') + '\n'
}

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

/** How long ago `ms` was, for people: "just now", "42s ago", "5m ago", "3h ago"; "never" for null. */
export function ago (ms: number | null, nowMs = Date.now()): string {
  if (ms === null) return 'never'
  const s = Math.round((nowMs - ms) / 1000)
  return s < 1 ? 'just now' : s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}
