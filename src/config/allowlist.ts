import { parsePublicKeyBase64 } from '../crypto/keys.js'
import { nameProblem, printable } from '../format/names.js'

/*
 * Who may sign what: the [files] allowlist and the [namespaces] table, checked
 * together (a name is either listed or in a namespace). Each mistake is one line
 * in `problems`, naming the key as the operator wrote it.
 */

/** The [files] table: valid names, each with a non-empty list of distinct valid keys, and no name that is another's directory. */
export function allowlist (files: Record<string, unknown>, problems: string[]): Map<string, Uint8Array[]> {
  const out = new Map<string, Uint8Array[]>()
  // Fleets list one key for thousands of names: each distinct key is checked (a curve point decode) once.
  const parsed = new Map<string, Uint8Array | string>()
  const parseKey = (s: string): Uint8Array | string => {
    let key = parsed.get(s)
    if (key === undefined) parsed.set(s, key = parsePublicKeyBase64(s))
    return key
  }
  for (const [name, signers] of Object.entries(files)) {
    const where = `files."${printable(name)}"`
    const problem = nameProblem(name)
    if (problem !== undefined) { problems.push(`${where}: bad name: ${problem}`); continue }
    if (isReserved(name)) { problems.push(`${where}: ${RESERVED}`); continue }
    if (!Array.isArray(signers) || signers.length === 0) {
      problems.push(`${where}: must be a non-empty list of base64 Ed25519 public keys`)
      continue
    }
    const keys: Uint8Array[] = []
    const seen = new Set<string>()
    signers.forEach((s: unknown, i: number) => {
      const key = typeof s === 'string' ? parseKey(s) : parsePublicKeyBase64(s as string)
      if (typeof key === 'string') { problems.push(`${where}[${i}]: key ${key}`); return }
      const id = Buffer.from(key).toString('base64')
      if (seen.has(id)) { problems.push(`${where}[${i}]: duplicate signer ${id}`); return }
      seen.add(id)
      keys.push(key)
    })
    out.set(name, keys)
  }
  // "a" as a file and "a/b" need "a" to be both a file and a directory.
  for (const name of out.keys()) {
    const segs = name.split('/')
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/')
      if (out.has(dir)) problems.push(`files."${dir}": is a file, but files."${name}" needs it as a directory`)
      // The store keeps the envelope of "a" at versions/a.sig, a file, which "a.sig/b" needs as a directory.
      if (dir.endsWith('.sig') && out.has(dir.slice(0, -4))) {
        problems.push(`files."${dir.slice(0, -4)}": its envelope is the file versions/${dir}, but files."${name}" needs that path as a directory`)
      }
    }
  }
  return out
}

/** `_dm` and the names under it are the daemon's own (the revocation list, node reports): never configured. */
const isReserved = (name: string): boolean => name === '_dm' || name.startsWith('_dm/')
const RESERVED = 'names under _dm/ are reserved (the revocation list, node reports) and need no entry'

/**
 * The [namespaces] table: each prefix is a valid name, none lies under
 * another or under (or over) a [files] name, and each has an issuer: the
 * network key, or the keys it lists.
 */
export function namespaceTable (table: Record<string, unknown>, files: Map<string, Uint8Array[]>, networkKey: Uint8Array | undefined, problems: string[]): Map<string, Uint8Array[]> {
  const out = new Map<string, Uint8Array[]>()
  for (const [ns, issuers] of Object.entries(table)) {
    const where = `namespaces."${printable(ns)}"`
    const problem = nameProblem(ns)
    if (problem !== undefined) { problems.push(`${where}: bad namespace: ${problem}`); continue }
    if (isReserved(ns)) { problems.push(`${where}: ${RESERVED}`); continue }
    if (!Array.isArray(issuers)) { problems.push(`${where}: must be a list of base64 issuer keys ([] for the network key alone)`); continue }
    const keys: Uint8Array[] = []
    issuers.forEach((s: unknown, i: number) => {
      const key = parsePublicKeyBase64(s as string)
      if (typeof key === 'string') problems.push(`${where}[${i}]: key ${key}`)
      else keys.push(key)
    })
    if (keys.length === 0 && networkKey === undefined && issuers.length === 0) {
      problems.push(`${where}: nobody can certify signers for it: set [network] key, or list issuer keys`)
    }
    out.set(ns, keys)
  }
  const under = (a: string, b: string): boolean => a === b || a.startsWith(b + '/')
  for (const ns of out.keys()) {
    for (const other of out.keys()) if (other !== ns && under(other, ns)) problems.push(`namespaces."${other}": lies under namespace "${ns}"; namespaces may not nest`)
    for (const name of files.keys()) {
      if (under(name, ns) || under(ns, name)) problems.push(`files."${name}": clashes with namespace "${ns}" (a name is either listed or in a namespace)`)
    }
  }
  return out
}
