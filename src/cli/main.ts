import { DmError, describeError } from '../errors.js'
import { ConfigError } from '../config/load.js'
import { parse, type Command } from './command.js'
import { keygen, pubkey } from './keys.js'
import { sign, verify } from './sign.js'
import { configCheck } from './config-check.js'
import { daemon, id } from './daemon.js'
import { publish, remove, list, peers, status } from './client.js'

/*
 * `dm`: every verb is a Command. Only `daemon` and `id` load libp2p, and only
 * inside their run(), so the offline and client verbs start fast.
 */
const commands: Record<string, Command> = {
  daemon,
  id,
  publish,
  delete: remove,
  list,
  peers,
  status,
  keygen,
  pubkey,
  sign,
  verify,
  'config check': configCheck
}

/** Exit statuses: 0 ok, 1 refused or failed, 2 usage, 3 daemon unreachable. */
function exitStatus (err: unknown): number {
  if (!(err instanceof DmError)) return 1
  if (err.code === 'ERR_USAGE') return 2
  if (err.code === 'ERR_DAEMON_UNREACHABLE') return 3
  return 1
}

function mainHelp (): string {
  const width = Math.max(...Object.keys(commands).map(k => k.length))
  return [
    'dm: replicate small signed files to every machine of a fleet',
    '',
    'usage: dm COMMAND [options]   (dm COMMAND --help for details)',
    '',
    ...Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    ''
  ].join('\n')
}

function commandHelp (name: string, cmd: Command): string {
  const opts = Object.entries(cmd.options).map(([k, o]) => {
    const flag = `--${k}${o.type === 'string' ? ' VALUE' : ''}`
    const def = 'default' in o && o.default !== undefined && o.default !== false ? ` (default ${String(o.default)})` : ''
    return `  ${flag}${def}`
  })
  return [`dm ${name}: ${cmd.summary}`, '', `usage: ${cmd.usage}`, '', ...(cmd.details !== undefined ? [cmd.details, ''] : []), 'options:', ...opts, '  --help', ''].join('\n')
}

export async function main (argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(mainHelp())
    return argv.length === 0 ? 2 : 0
  }
  if (argv[0] === '--version') {
    process.stdout.write('0.1.0\n')
    return 0
  }
  const two = `${argv[0]} ${argv[1] ?? ''}`
  const name = commands[two] !== undefined ? two : argv[0]
  const cmd = commands[name]
  if (cmd === undefined) {
    process.stderr.write(`dm: unknown command "${argv[0]}"\n\n${mainHelp()}`)
    return 2
  }
  try {
    const args = parse(cmd, argv.slice(name.split(' ').length))
    if (args.values.help === true) {
      process.stdout.write(commandHelp(name, cmd))
      return 0
    }
    return (await cmd.run(args)) ?? 0
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : describeError(err)
    for (const line of msg.split('\n')) process.stderr.write(`dm: ${line}\n`)
    if (!(err instanceof DmError)) process.stderr.write('dm: (unexpected error; run with DM_DEBUG=1 for a stack trace)\n')
    if (process.env.DM_DEBUG === '1') console.error(err)
    return exitStatus(err)
  }
}
