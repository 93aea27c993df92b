import { createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'

/*
 * Signatures use node:crypto, not @noble/ed25519: with a cached KeyObject it
 * verifies about 14x faster on this hardware (13,000/s against 900/s), which
 * is what makes catching up thousands of versions cost under a second. Both
 * produce identical RFC 8032 signatures; the tests check ours with noble.
 */

export const SIGNATURE_BYTES = 64

/** Public keys are few (one per signer), so parsed KeyObjects are kept; bounded anyway. */
const MAX_CACHED_KEYS = 4096
const keyCache = new Map<string, KeyObject>()

function publicKeyObject (raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('base64url')
  let key = keyCache.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id }, format: 'jwk' })
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear()
    keyCache.set(id, key)
  }
  return key
}

export function sign (privateKey: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(null, message, privateKey))
}

/** False for any bad input, including a public key that is not a curve point. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== SIGNATURE_BYTES) return false
  try {
    return nodeVerify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}
