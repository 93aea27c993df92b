import type { Command, OptionSpec } from './command.js'
import { HELP_OPTION } from './command.js'
import { EXIT_TABLE } from './exit.js'

/*
 * Every view of the command table: --help, the man page (written at build by
 * scripts/bundle.mjs) and shell completion. One table, so they cannot drift.
 */

export const VERSION = '0.1.0'
export const TAGLINE = 'replicate small signed files to every machine of a fleet'

export type CommandTable = Record<string, Command>

function withHelp (cmd: Command): Array<[string, OptionSpec]> {
  return [...Object.entries(cmd.options), ['help', HELP_OPTION]]
}

function flag (name: string, o: OptionSpec): string {
  return `${o.short !== undefined ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`
}

function describe (o: OptionSpec): string {
  const def = o.default !== undefined && o.default !== false ? String(o.default) : undefined
  const dflt = o.env !== undefined ? ` (default $${o.env}${def !== undefined ? `, else ${def}` : ''})` : def !== undefined ? ` (default ${def})` : ''
  return o.description + dflt
}

/** Command groups (`dm config ...`): the first word of two-word commands. */
export function groups (commands: CommandTable): string[] {
  return [...new Set(Object.keys(commands).filter(k => k.includes(' ')).map(k => k.split(' ')[0]))]
}

export function exitTable (): string[] {
  return EXIT_TABLE.map(([code, meaning]) => `  ${code}  ${meaning}`)
}

export function mainHelp (commands: CommandTable): string {
  const width = Math.max(...Object.keys(commands).map(k => k.length))
  return [
    `dm: ${TAGLINE}`,
    '',
    'usage: dm COMMAND [options]   (dm COMMAND --help for details)',
    '',
    ...Object.entries(commands).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    '',
    'Every command that reads the config takes --config PATH (default $DM_CONFIG,',
    'else /etc/data-mesher/dm.toml). Exit status:',
    ...exitTable(),
    ''
  ].join('\n')
}

export function commandHelp (name: string, cmd: Command): string {
  const opts = withHelp(cmd)
  const width = Math.max(...opts.map(([k, o]) => flag(k, o).length))
  return [
    `dm ${name}: ${cmd.summary}`,
    '',
    `usage: ${cmd.usage}`,
    '',
    ...(cmd.details !== undefined ? [cmd.details, ''] : []),
    'options:',
    ...opts.map(([k, o]) => `  ${flag(k, o).padEnd(width)}  ${describe(o)}`),
    ''
  ].join('\n')
}

export function groupHelp (group: string, commands: CommandTable): string {
  const subs = Object.entries(commands).filter(([k]) => k.startsWith(group + ' '))
  const width = Math.max(...subs.map(([k]) => k.length))
  return [
    `dm ${group}: its subcommands`,
    '',
    `usage: dm ${group} SUBCOMMAND [options]   (dm ${group} SUBCOMMAND --help for details)`,
    '',
    ...subs.map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    ''
  ].join('\n')
}

/** A bash completion script: commands, then each command's options; values that are paths complete as files. */
export function bashCompletion (commands: CommandTable): string {
  const top = [...new Set(Object.keys(commands).map(k => k.split(' ')[0]))]
  const cases = Object.entries(commands).map(([k, c]) => {
    const words = withHelp(c).flatMap(([n, o]) => [`--${n}`, ...(o.short !== undefined ? [`-${o.short}`] : [])])
    return `    '${k}') opts='${words.join(' ')}' ;;`
  })
  const groupCases = groups(commands).map(g => `    ${g}) if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W '${Object.keys(commands).filter(k => k.startsWith(g + ' ')).map(k => k.split(' ')[1]).join(' ')} --help' -- "$cur") ); return; fi; cmd="${g} \${COMP_WORDS[2]}" ;;`)
  return `# bash completion for dm (data-mesher ${VERSION}); generated from dm's command table.
# Install: dm completion bash > /usr/share/bash-completion/completions/dm
_dm() {
  local cur prev cmd opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W '${top.join(' ')} --help --version' -- "$cur") )
    return
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$cmd" in
${groupCases.join('\n')}
  esac
  case "$prev" in
    --log-format) COMPREPLY=( $(compgen -W 'json pretty auto' -- "$cur") ); return ;;
    --ttl|-t|--name|-n|--network|--tombstone) return ;;
  esac
  opts=''
  case "$cmd" in
${cases.join('\n')}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -o filenames -F _dm dm
`
}

/** roff-escapes one line of text. */
function roff (text: string): string {
  const t = text.replace(/\\/g, '\\e').replace(/-/g, '\\-')
  return /^[.']/.test(t) ? `\\&${t}` : t
}

/** The dm(1) man page, in man(7) roff. */
export function manPage (commands: CommandTable): string {
  const out: string[] = [
    `.TH DM 1 "" "data-mesher ${VERSION}" "User Commands"`,
    '.SH NAME',
    `dm \\- ${roff(TAGLINE)}`,
    '.SH SYNOPSIS',
    '.B dm',
    '.I COMMAND',
    '[\\fIoptions\\fR]',
    '.SH DESCRIPTION',
    'Every version carries an Ed25519 signature; every daemon checks it against the',
    'TOML allowlist in its config and keeps the latest. See the README, docs/PROTOCOL.md',
    'and docs/API.md in the package.',
    '.SH COMMANDS'
  ]
  for (const [name, cmd] of Object.entries(commands)) {
    out.push(`.SS "dm ${name}"`, roff(cmd.summary) + '.', '.PP', '.nf', ...cmd.usage.split('\n').map(roff), '.fi')
    if (cmd.details !== undefined) out.push('.PP', ...cmd.details.split('\n').map(roff))
    for (const [k, o] of withHelp(cmd)) out.push('.TP', `.B ${roff(flag(k, o).trim())}`, roff(describe(o)))
  }
  out.push(
    '.SH ENVIRONMENT',
    '.TP',
    '.B DM_CONFIG',
    'Default for \\-\\-config (else /etc/data\\-mesher/dm.toml).',
    '.TP',
    '.B DM_DEBUG',
    'Set to 1 to print a stack trace on an unexpected error.',
    '.SH EXIT STATUS',
    ...EXIT_TABLE.flatMap(([code, meaning]) => ['.TP', `.B ${code}`, roff(meaning)]),
    '.SH FILES',
    '.TP',
    '.I /etc/data\\-mesher/dm.toml',
    'the config (config.example.toml documents every key)',
    '.TP',
    '.I /var/lib/data\\-mesher/files/',
    'the replicated files',
    ''
  )
  return out.join('\n')
}
