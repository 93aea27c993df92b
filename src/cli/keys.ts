import { generatePrivateKeyFile, loadPrivateKey, publicKeyToBase64 } from '../crypto/keys.js'
import { required, type Command } from './command.js'
import { warn } from './output.js'

export const keygen: Command = {
  summary: 'create an Ed25519 signing key',
  usage: 'dm keygen --out PATH',
  details: 'Writes a PKCS#8 PEM private key with mode 0600 (never overwrites) and prints\nits public key in the base64 form that [files] lists.',
  options: { out: { type: 'string', short: 'o' } },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const key = generatePrivateKeyFile(required(args, 'out'))
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
    const key = loadPrivateKey(args.positionals[0], { warn })
    process.stdout.write(publicKeyToBase64(key.publicKey) + '\n')
    return 0
  }
}
