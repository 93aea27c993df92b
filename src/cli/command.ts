import { parseArgs, type ParseArgsConfig } from 'node:util'
import { DmError } from '../errors.js'
import { DEFAULT_CONFIG_PATH } from '../config/config.js'

/** One `dm` verb: its help text, its options (node:util parseArgs form) and its action. */
export interface Command {
  summary: string
  usage: string
  /** Extra lines for --help, explaining options and behaviour. */
  details?: string
  options: NonNullable<ParseArgsConfig['options']>
  positionals: { min: number, max: number }
  run: (args: ParsedArgs) => Promise<number | undefined>
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

export const configOption = { config: { type: 'string', short: 'c', default: DEFAULT_CONFIG_PATH } } as const
export const jsonOption = { json: { type: 'boolean', default: false } } as const

export function parse (cmd: Command, argv: string[]): ParsedArgs {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
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
