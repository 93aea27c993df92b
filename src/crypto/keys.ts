import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import fs from 'node:fs'
import { DmError } from '../errors.js'
import { describeFault, publicKeyFault } from './ed25519.js'

/** A signing key: the private KeyObject and its raw 32-byte public key. */
export interface SigningKey {
  privateKey: KeyObject
  publicKey: Uint8Array
}

export const PUBLIC_KEY_BYTES = 32

/** The allowlist form of a public key: standard base64 of the raw 32 bytes. */
export function publicKeyToBase64 (raw: Uint8Array): string {
  return Buffer.from(raw).toString('base64')
}

/**
 * Parses the allowlist form; the reason is returned so the config can name the
 * key. A key that strict verification would refuse (small order, non-canonical,
 * not on the curve) is refused here, so it can never be listed.
 */
export function parsePublicKeyBase64 (text: string): Uint8Array | string {
  if (typeof text !== 'string') return 'is not a string'
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return 'is not standard base64'
  const raw = Buffer.from(text, 'base64')
  if (raw.length !== PUBLIC_KEY_BYTES) return `decodes to ${raw.length} bytes, not ${PUBLIC_KEY_BYTES}`
  const fault = publicKeyFault(raw)
  if (fault !== undefined) return `is refused (${fault}): ${describeFault(fault)}`
  return new Uint8Array(raw)
}

export function rawPublicKey (key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' })
  if (jwk.x === undefined) throw new DmError('ERR_KEY', 'key has no public part')
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'))
}

/** Parses a PEM Ed25519 private key (PKCS#8, as `dm keygen` and `openssl genpkey` write). */
export function parsePrivateKeyPem (pem: string | Buffer, source = 'key'): SigningKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new DmError('ERR_KEY', `${source}: not a readable PEM private key (${(err as Error).message})`)
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new DmError('ERR_KEY', `${source}: is a ${privateKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519`)
  }
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}

export interface LoadKeyOptions {
  /** Called when the file is readable by group or others. */
  warn?: (message: string) => void
}

/** Reads a private key file with a clear error for each way it can be wrong. */
export function loadPrivateKey (path: string, opts: LoadKeyOptions = {}): SigningKey {
  let pem: Buffer
  try {
    const st = fs.statSync(path)
    if (!st.isFile()) throw new DmError('ERR_KEY', `key ${path}: not a regular file`)
    if ((st.mode & 0o077) !== 0 && opts.warn !== undefined) {
      opts.warn(`key ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it should be 0600 (chmod 600 ${path})`)
    }
    pem = fs.readFileSync(path)
  } catch (err) {
    if (err instanceof DmError) throw err
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message
    throw new DmError('ERR_KEY', `key ${path}: ${why}`)
  }
  return parsePrivateKeyPem(pem, `key ${path}`)
}

/** Writes a new key as PKCS#8 PEM with mode 0600; never overwrites. */
export function generatePrivateKeyFile (path: string): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' })
  try {
    fs.writeFileSync(path, pem, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new DmError('ERR_KEY', `${path} already exists; refusing to overwrite a key`)
    throw new DmError('ERR_KEY', `cannot write ${path}: ${(err as Error).message}`)
  }
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}
