import { parseArgs } from 'node:util'
import { DmError } from '../errors.js'
import { DEFAULT_CONFIG_PATH } from '../config/config.js'

/** One option of a `dm` verb: what --help, the man page and shell completion show. */
export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  /** Name of the value in help text, e.g. PATH. */
  value?: string
  default?: string | boolean
  /** An environment variable that, when set, replaces the default. */
  env?: string
  description: string
}

/** One `dm` verb: its help text, its options and its action. */
export interface Command {
  summary: string
  usage: string
  /** Extra lines for --help, explaining behaviour. */
  details?: string
  options: Record<string, OptionSpec>
  positionals: { min: number, max: number }
  run: (args: ParsedArgs) => Promise<number | undefined>
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

export const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' }

export const configOption = {
  config: { type: 'string', short: 'c', value: 'PATH', default: DEFAULT_CONFIG_PATH, env: 'DM_CONFIG', description: 'config file' }
} satisfies Record<string, OptionSpec>
export const jsonOption = {
  json: { type: 'boolean', description: 'print JSON (stable fields, docs/API.md) instead of a table' }
} satisfies Record<string, OptionSpec>

/** Edit distance with adjacent swaps (so `--nmae` is one step from `--name`). */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/** The closest candidate, if it is close enough to be what was meant. */
export function nearest (word: string, candidates: string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dist = editDistance(word, c)
    if (dist < bestD) { best = c; bestD = dist }
  }
  return bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined
}

function allOptions (cmd: Command): Record<string, OptionSpec> {
  return { ...cmd.options, help: HELP_OPTION }
}

/** Refuses an unknown option in one line, suggesting the nearest known one. */
function checkOptionNames (cmd: Command, argv: string[]): void {
  const opts = allOptions(cmd)
  const longs = Object.keys(opts)
  const shorts = new Map(Object.entries(opts).flatMap(([k, o]) => o.short !== undefined ? [[o.short, k]] : []))
  for (const arg of argv) {
    if (arg === '--') return
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=')[0]
      if (longs.includes(name)) continue
      const guess = nearest(name, longs)
      throw new DmError('ERR_USAGE', `unknown option --${name}${guess !== undefined ? `; did you mean --${guess}?` : ''} (see --help)`)
    }
    if (/^-[^-]/.test(arg)) {
      for (const ch of arg.slice(1)) {
        if (!shorts.has(ch)) throw new DmError('ERR_USAGE', `unknown option -${ch} (see --help)`)
        if (opts[shorts.get(ch) as string].type === 'string') break // the rest is its value
      }
    }
  }
}

export function parse (cmd: Command, argv: string[]): ParsedArgs {
  checkOptionNames(cmd, argv)
  const options = Object.fromEntries(Object.entries(allOptions(cmd)).map(([k, o]) => {
    const def = o.env !== undefined && process.env[o.env] !== undefined && process.env[o.env] !== '' ? process.env[o.env] : o.default
    return [k, { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}), ...(def !== undefined ? { default: def } : {}) }]
  }))
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new DmError('ERR_USAGE', (err as Error).message.split('\n')[0])
  }
  const { values, positionals } = parsed as ParsedArgs
  if (values.help !== true && (positionals.length < cmd.positionals.min || positionals.length > cmd.positionals.max)) {
    throw new DmError('ERR_USAGE', `usage: ${cmd.usage}`)
  }
  return { values, positionals }
}

export function str (args: ParsedArgs, key: string): string | undefined {
  const v = args.values[key]
  return typeof v === 'string' ? v : undefined
}

export function required (args: ParsedArgs, key: string): string {
  const v = str(args, key)
  if (v === undefined) throw new DmError('ERR_USAGE', `--${key} is required`)
  return v
}
