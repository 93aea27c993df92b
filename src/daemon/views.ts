import { publicKeyToBase64 } from '../crypto/keys.js'
import { hex, VersionKind } from '../format/version.js'
import type { HeldEntry } from '../store/store.js'
import type { VersionInfo } from '../api/wire.js'

/** A held version as the local API shows it. */
export function versionInfo (e: HeldEntry): VersionInfo {
  const v = e.version
  return {
    name: e.name,
    size: v.size,
    timestampMs: v.timestampMs,
    signedAt: new Date(v.timestampMs).toISOString(),
    expiresAtMs: v.expiresAtMs,
    signer: publicKeyToBase64(v.signer),
    sha256: hex(v.sha256),
    id: hex(e.id),
    tombstone: v.kind === VersionKind.Tombstone,
    present: e.present
  }
}
