import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { commands } from '../../src/cli/main.js'
import { bashCompletion, commandHelp, manPage } from '../../src/cli/help.js'
import { REPO_ROOT, tempDir } from './helpers.js'

/* --help, the man page and the completion script all come from one command table; each must show all of it. */

const allOptions = (name: string): Array<[string, { short?: string, description: string }]> =>
  [...Object.entries(commands[name].options), ['help', { short: 'h', description: 'show this help' }]]

test('every command\'s --help lists every option with its short form and a one-line description', () => {
  for (const name of Object.keys(commands)) {
    const help = commandHelp(name, commands[name])
    for (const [opt, o] of allOptions(name)) {
      assert.ok(o.description.length > 0 && !o.description.includes('\n'), `${name} --${opt} has a one-line description`)
      const line = help.split('\n').find(l => l.includes(`--${opt}`) && l.includes(o.description))
      assert.ok(line !== undefined, `dm ${name} --help shows --${opt} with its description:\n${help}`)
      if (o.short !== undefined) assert.ok(line.includes(`-${o.short}, --${opt}`), `dm ${name} --help shows -${o.short}`)
    }
  }
})

test('the man page and the bash completion name every command and every option', () => {
  const man = manPage(commands)
  const bash = bashCompletion(commands)
  const unroff = man.replace(/\\-/g, '-')
  for (const name of Object.keys(commands)) {
    assert.ok(unroff.includes(`.SS "dm ${name}"`), `man page has dm ${name}`)
    for (const word of name.split(' ')) assert.ok(bash.includes(word), `completion has ${word}`)
    const section = unroff.slice(unroff.indexOf(`.SS "dm ${name}"`)).split('.SS ')[1]
    const caseLine = bash.split('\n').find(l => l.trimStart().startsWith(`'${name}')`))
    assert.ok(caseLine !== undefined, `completion has a case for ${name}`)
    for (const [opt, o] of allOptions(name)) {
      assert.ok(section.includes(`--${opt}`), `man page documents dm ${name} --${opt}`)
      assert.ok(caseLine.includes(`--${opt}`), `completion offers dm ${name} --${opt}`)
      if (o.short !== undefined) assert.ok(caseLine.includes(` -${o.short}`) || caseLine.includes(`'-${o.short}`), `completion offers -${o.short}`)
    }
  }
  for (const code of [0, 1, 2, 3, 4, 5]) assert.match(unroff, new RegExp(`^\\.B ${code}$`, 'm'), `exit status ${code} in the man page`)
})

test('the built package ships the same man page and completion, and package.json installs the man page', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { man: string[] }
  assert.deepEqual(pkg.man, ['./dist/dm.1'])
  assert.equal(fs.readFileSync(path.join(REPO_ROOT, 'dist/dm.1'), 'utf8'), manPage(commands), 'dist/dm.1 is stale: run npm run build')
  assert.equal(fs.readFileSync(path.join(REPO_ROOT, 'dist/dm.bash'), 'utf8'), bashCompletion(commands))
})

test('bash completes commands, subcommands and options with the generated script', () => {
  const { dir, cleanup } = tempDir('dm-compl-')
  try {
    const script = path.join(dir, 'dm.bash')
    fs.writeFileSync(script, bashCompletion(commands))
    const complete = (...words: string[]): string[] => execFileSync('bash', ['-c', `source ${JSON.stringify(script)}; COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _dm; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' }).split('\n').filter(Boolean)
    assert.deepEqual(complete('dm', 'pu'), ['publish', 'pubkey'])
    assert.deepEqual(complete('dm', 'config', 'ch'), ['check'])
    assert.deepEqual(complete('dm', 'publish', '--s'), ['--sig'])
    assert.deepEqual(complete('dm', 'config', 'check', '--c'), ['--config'])
    assert.deepEqual(complete('dm', 'daemon', '--log-format', 'p'), ['pretty'])
  } finally { cleanup() }
})
