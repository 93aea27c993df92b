import { DmError, describeError } from '../errors.js'
import { ConfigError } from '../config/load.js'
import { nearest, parse, type Command } from './command.js'
import { keygen, pubkey } from './keys.js'
import { sign, verify } from './sign.js'
import { configCheck } from './config-check.js'
import { certIssue, certShow, networkAdmit, networkKeygen } from './trust.js'
import { daemon, id } from './daemon.js'
import { revoke } from './revoke.js'
import { fleet, wait } from './fleet.js'
import { publish, remove } from './publish.js'
import { getContent, list, peers, status } from './inspect.js'
import { EXIT, exitStatus } from './exit.js'
import { bashCompletion, commandHelp, groupHelp, groups, mainHelp, VERSION, type CommandTable } from './help.js'

const completion: Command = {
  summary: 'print a shell completion script',
  usage: 'dm completion bash',
  details: 'Load it with: source <(dm completion bash), or install it as\n/usr/share/bash-completion/completions/dm.',
  options: {},
  positionals: { min: 1, max: 1 },
  async run (args) {
    if (args.positionals[0] !== 'bash') throw new DmError('ERR_USAGE', `no completion for "${args.positionals[0]}"; only bash is supported`)
    process.stdout.write(bashCompletion(commands))
    return 0
  }
}

/*
 * `dm`: every verb is a Command. Only `daemon` and `id` load libp2p, and only
 * inside their run(), so the offline and client verbs start fast.
 */
export const commands: CommandTable = {
  daemon,
  id,
  publish,
  delete: remove,
  get: getContent,
  list,
  peers,
  status,
  keygen,
  pubkey,
  sign,
  verify,
  'config check': configCheck,
  'network keygen': networkKeygen,
  'network admit': networkAdmit,
  'cert issue': certIssue,
  'cert show': certShow,
  revoke,
  fleet,
  wait,
  completion
}

/**
 * Every error line ends with its stable code, " (ERR_…)", for scripts and
 * tests to match instead of the sentence. A code from the daemon's answer is
 * shown only if it looks like one (it is another process's bytes).
 */
function codeSuffix (err: unknown): string {
  return err instanceof DmError && /^ERR_[A-Z0-9_]{1,40}$/.test(err.code) ? ` (${err.code})` : ''
}

export async function main (argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(mainHelp(commands))
    return argv.length === 0 ? EXIT.usage : EXIT.ok
  }
  if (argv[0] === '--version') {
    process.stdout.write(`${VERSION}\n`)
    return EXIT.ok
  }
  const two = `${argv[0]} ${argv[1] ?? ''}`
  const name = commands[two] !== undefined ? two : argv[0]
  const cmd = commands[name]
  if (cmd === undefined) {
    if (groups(commands).includes(argv[0])) {
      const asked = argv[1] === '--help' || argv[1] === '-h'
      if (!asked) process.stderr.write(argv[1] === undefined ? `dm: ${argv[0]} needs a subcommand\n` : `dm: unknown command "${argv[0]} ${argv[1]}"\n`)
      ;(asked ? process.stdout : process.stderr).write(groupHelp(argv[0], commands))
      return asked ? EXIT.ok : EXIT.usage
    }
    const guess = nearest(argv[0], Object.keys(commands).map(k => k.split(' ')[0]))
    process.stderr.write(`dm: unknown command "${argv[0]}"${guess !== undefined ? `; did you mean "${guess}"?` : ''}\n\n${mainHelp(commands)}`)
    return EXIT.usage
  }
  try {
    const args = parse(cmd, argv.slice(name.split(' ').length))
    if (args.values.help === true) {
      process.stdout.write(commandHelp(name, cmd))
      return EXIT.ok
    }
    return (await cmd.run(args)) ?? EXIT.ok
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : describeError(err)
    const code = codeSuffix(err)
    for (const line of msg.split('\n')) process.stderr.write(`dm: ${line}${code}\n`)
    if (!(err instanceof DmError)) process.stderr.write('dm: (unexpected error; run with DM_DEBUG=1 for a stack trace)\n')
    if (process.env.DM_DEBUG === '1') console.error(err)
    return exitStatus(err)
  }
}
