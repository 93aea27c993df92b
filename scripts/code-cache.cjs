// Writes dist/client/client.cache, the V8 code cache bin/dm hands to V8 with
// the client bundle: compiled code for the script and for every function
// that ran here, so `dm` skips most parsing and compiling. The commands run
// against a throw-away config with no daemon; their output is discarded.
// V8 accepts the cache only from the same Node version and flags, and
// otherwise compiles as if there were none.
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const vm = require('node:vm')

const file = path.join(__dirname, '../dist/client/client.js')
const script = new vm.Script(fs.readFileSync(file, 'utf8'), { filename: file })
const client = { exports: {} }
script.runInThisContext()(require, client)

async function warm () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-code-cache-'))
  const write = [process.stdout.write, process.stderr.write]
  process.stdout.write = process.stderr.write = () => true
  try {
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[api]\nsocket = "api.sock"\n')
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    const key = path.join(dir, 'k')
    for (const argv of [['--help'], ['publish', '--help'], ['keygen', '--out', key], ['publish', path.join(dir, 'f'), '--key', key, '-c', config], ['status', '-c', config], ['list', '-c', config]]) {
      await client.exports.main(argv)
    }
  } finally {
    [process.stdout.write, process.stderr.write] = write
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

warm().then(() => fs.writeFileSync(path.join(__dirname, '../dist/client/client.cache'), script.createCachedData()))
