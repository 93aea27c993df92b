import fs from 'node:fs'
import path from 'node:path'
import { DmError } from '../errors.js'
import { generatePrivateKeyFile, loadPrivateKey, publicKeyToBase64, type SigningKey } from '../crypto/keys.js'
import { required, type Command } from './command.js'
import { warn } from './output.js'

/** Whether a key file holds a public key (PEM, the base64 [files] form, or OpenSSH), a common slip for --key. */
function looksPublic (file: string): boolean {
  let text: string
  try { text = fs.readFileSync(file, 'utf8').slice(0, 4096).trim() } catch { return false }
  return /-----BEGIN PUBLIC KEY-----/.test(text) || /^ssh-ed25519 /.test(text) || (/^[A-Za-z0-9+/]{43}=$/.test(text))
}

/** Loads the private signing key for --key, with one clear line when given a public key instead. */
export function loadSigningKey (file: string): SigningKey {
  if (looksPublic(file)) throw new DmError('ERR_KEY', `key ${file} is a public key; --key needs the private key file (the one dm keygen wrote)`)
  return loadPrivateKey(file, { warn })
}

/** Creates the parent directory of a key or signature file, private (0700), if missing. */
export function ensurePrivateParent (file: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 })
}

export const keygen: Command = {
  summary: 'create an Ed25519 signing key',
  usage: 'dm keygen --out PATH',
  details: 'Writes a PKCS#8 PEM private key with mode 0600 (never overwrites; a missing\nparent directory is created with mode 0700) and prints its public key in the\nbase64 form that [files] lists.',
  options: { out: { type: 'string', short: 'o', value: 'PATH', description: 'where to write the private key' } },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const out = required(args, 'out')
    ensurePrivateParent(out)
    const key = generatePrivateKeyFile(out)
    process.stdout.write(publicKeyToBase64(key.publicKey) + '\n')
    return 0
  }
}

export const pubkey: Command = {
  summary: 'print the base64 public key of a private key file',
  usage: 'dm pubkey PATH',
  details: 'Reads any Ed25519 PEM private key (dm keygen, openssl genpkey -algorithm ed25519).',
  options: {},
  positionals: { min: 1, max: 1 },
  async run (args) {
    const key = loadSigningKey(args.positionals[0])
    process.stdout.write(publicKeyToBase64(key.publicKey) + '\n')
    return 0
  }
}
