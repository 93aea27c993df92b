/* Shared fixtures for the unit tests (not a test file itself). */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DmError, type ErrorCode } from '../../src/errors.js'
import { rawPublicKey, type SigningKey } from '../../src/crypto/keys.js'
import type { Log } from '../../src/util/log.js'

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
export const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export function keyFromSeed (seed: Uint8Array): SigningKey {
  const privateKey: KeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}

/** A deterministic key per small integer, so failures reproduce. */
export function testKey (n: number): SigningKey {
  return keyFromSeed(Buffer.alloc(32, n))
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir (prefix = 'dm-test-'): { dir: string, cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** An assert.throws / rejects matcher for a DmError with the given code. */
export function dmError (code: ErrorCode, message?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    if (!(err instanceof DmError)) throw new Error(`expected DmError ${code}, got ${String(err)}`)
    if (err.code !== code) throw new Error(`expected DmError ${code}, got ${err.code}: ${err.message}`)
    if (message !== undefined && !message.test(err.message)) throw new Error(`message ${JSON.stringify(err.message)} does not match ${String(message)}`)
    return true
  }
}

export interface VectorFile {
  format: string
  key: { seedHex: string, publicKeyBase64: string, publicKeyHex: string, privateKeyPkcs8Pem: string }
  network: { id: string, networkIdHex: string }
  vectors: Array<{
    description: string
    kind: 'file' | 'tombstone'
    kindByte: number
    name: string
    contentUtf8: string
    contentHex: string
    timestampMs: number
    expiresAtMs: number
    size: number
    sha256Hex: string
    signedBytesHex: string
    signatureHex: string
    envelopeHex: string
    versionIdHex: string
  }>
}

export function loadVectors (): VectorFile {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'vectors', 'version-v1.json'), 'utf8')) as VectorFile
}

/**
 * This process's open descriptors that name something under `dir` (read from
 * /proc/self/fd), as "fd -> path". A store, once closed, must hold none: a
 * descriptor left to the garbage collector is a leak a peer could repeat until EMFILE.
 */
export function fdsUnder (dir: string): string[] {
  const root = fs.realpathSync(dir)
  const open: string[] = []
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string
    try { target = fs.readlinkSync(`/proc/self/fd/${fd}`) } catch { continue } // closed meanwhile (readdir's own fd)
    if (target === root || target.startsWith(root + path.sep)) open.push(`${fd} -> ${target}`)
  }
  return open
}

export interface LogLine { level: string, obj: Record<string, unknown>, msg: string }

/** A Log that keeps every line, for tests that check what was logged, by code. */
export function recordingLog (): Log & { lines: LogLine[] } {
  const lines: LogLine[] = []
  const at = (level: string) => (obj: object, msg: string): void => { lines.push({ level, obj: obj as Record<string, unknown>, msg }) }
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}
