/**
 * Orders strings by UTF-16 code unit, the same on every machine. Not
 * localeCompare: its first call loads ICU's collation data, which then stays
 * resident in the daemon (scripts/bundle.mjs rewrites the dependencies' calls).
 */
export function byCodeUnits (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
