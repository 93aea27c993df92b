import { publicKeyToBase64 } from '../crypto/keys.js'
import { hex, VersionKind } from '../format/version.js'
import { isExpired } from '../format/version.js'
import type { HeldEntry } from '../store/store.js'
import type { VersionInfo, VersionState } from './wire.js'

/*
 * The daemon's side of GET /v1/versions: what each held entry amounts to.
 * Pure, so the rules are tested without a daemon.
 */

/** The state of a held entry at `nowMs`; `listed` is whether its name is still in [files]. */
export function versionState (entry: Pick<HeldEntry, 'version' | 'present'>, nowMs: number, listed: boolean): VersionState {
  if (entry.version.kind === VersionKind.Tombstone) return 'tombstoned'
  if (!listed) return 'unlisted'
  if (isExpired(entry.version, nowMs)) return 'expired'
  return entry.present ? 'present' : 'missing'
}

export function versionInfo (e: HeldEntry, nowMs: number, listed: boolean): VersionInfo {
  const v = e.version
  const state = versionState(e, nowMs, listed)
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
    present: state === 'present' || (state === 'unlisted' && e.present && !isExpired(v, nowMs)),
    state
  }
}
