import os from 'node:os'

/** What os.networkInterfaces() returns, trimmed to what is used (tests pass their own). */
export type Interfaces = NodeJS.Dict<Array<{ address: string, family: string | number, internal: boolean }>>

const WILDCARD: Record<string, { family: string, usable: (a: string) => boolean }> = {
  ip4: { family: 'IPv4', usable: a => !a.startsWith('169.254.') },
  ip6: { family: 'IPv6', usable: a => !/^fe[89ab]/i.test(a) } // link-local needs a zone; useless in a bootstrap list
}

export interface DialableAddrs {
  addrs: string[]
  /** Listen addresses on a wildcard host for which no interface address was found: they must be edited by hand. */
  unresolved: string[]
}

/**
 * The multiaddrs other nodes should dial, with /p2p/<peer id>. A listen
 * address on 0.0.0.0 or :: stands for every interface, so it is replaced by
 * this machine's non-loopback addresses of that family. No libp2p here: this
 * runs in `dm id`.
 */
export function dialableAddrs (listen: string[], peerId: string, interfaces: Interfaces = os.networkInterfaces()): DialableAddrs {
  const addrs: string[] = []
  const unresolved: string[] = []
  for (const a of listen) {
    const parts = a.split('/') // ['', 'ip4', '0.0.0.0', 'tcp', '7946']
    const wild = WILDCARD[parts[1]]
    if (wild === undefined || (parts[2] !== '0.0.0.0' && parts[2] !== '::')) {
      addrs.push(`${a}/p2p/${peerId}`)
      continue
    }
    const hosts = Object.values(interfaces).flatMap(list => list ?? [])
      .filter(i => !i.internal && String(i.family).replace(/^4$/, 'IPv4').replace(/^6$/, 'IPv6') === wild.family && wild.usable(i.address))
      .map(i => i.address)
    if (hosts.length === 0) {
      unresolved.push(a)
      addrs.push(`${a}/p2p/${peerId}`)
    }
    for (const h of [...new Set(hosts)]) addrs.push(['', parts[1], h, ...parts.slice(3)].join('/') + `/p2p/${peerId}`)
  }
  return { addrs, unresolved }
}
