import { publicKeyToBase64 } from '../crypto/keys.js'
import { describeError } from '../errors.js'
import { attachmentsOf, AttachmentType } from '../format/attachments.js'
import { CertKind, decodeCertificate, verifyCertificate } from '../format/certificate.js'
import { parseNodeReport, type NodeReport } from '../format/node-report.js'
import { hex, VersionKind, type SignedVersion } from '../format/version.js'
import { isNodeReportName, nodeReportOwner } from '../policy/node-reports.js'
import type { Store } from '../store/store.js'
import type { Acceptor } from '../sync/acceptor-api.js'
import { fleetView, type FleetQuery, type FleetView, type ReportSource } from '../api/fleet-view.js'
import type { NodeReporter } from './node-report.js'

/*
 * The fleet as this daemon sees it: its own live report, and every other
 * node's report it holds (an accepted, not revoked, not deleted version of
 * `_dm/nodes/<key>`). Parsed reports are kept per name, so a request reads
 * only reports that changed, and an expired report (its file removed) still
 * shows what the node last said.
 */

export interface FleetComponents {
  store: Store
  acceptor: Acceptor
  reporter: NodeReporter
  self: { key: Uint8Array, peerId: string }
  networkKey: Uint8Array
  /** The peer id a node identity key stands for. */
  peerIdOf: (key: Uint8Array) => string
  nowMs: () => number
}

interface Parsed { id: string, report?: NodeReport, problem?: string }

export function createFleet (c: FleetComponents): { view: (q: FleetQuery) => Promise<FleetView> } {
  const parsed = new Map<string, Parsed>()

  async function read (name: string, id: string, key: Uint8Array): Promise<Parsed | undefined> {
    const known = parsed.get(name)
    if (known?.id === id) return known
    const content = await c.store.readContent(name)
    // Gone (expired): what it said last, if this daemon read it.
    if (content === undefined) return known
    let next: Parsed
    try {
      const report = parseNodeReport(content)
      // A report speaks for the key that signed it: a peer id that is not that key's is a lie.
      next = report.peerId === c.peerIdOf(key) ? { id, report } : { id, problem: `its peer id ${report.peerId} is not its key's` }
    } catch (err) {
      next = { id, problem: describeError(err) }
    }
    parsed.set(name, next)
    return next
  }

  async function sources (): Promise<ReportSource[]> {
    const self = c.reporter.current()
    const out: ReportSource[] = [{ peerId: c.self.peerId, key: publicKeyToBase64(c.self.key), name: self.node, self: true, timestampMs: c.nowMs(), expiresAtMs: 0, report: self }]
    const seen = new Set<string>()
    for (const e of [...c.store.entries()]) {
      if (!isNodeReportName(e.name) || e.version.kind === VersionKind.Tombstone || c.acceptor.held(e.name) === undefined) continue
      const key = nodeReportOwner(e.name)
      if (typeof key === 'string' || Buffer.from(key).equals(c.self.key)) continue
      seen.add(e.name)
      const p = await read(e.name, hex(e.id), key)
      out.push({
        peerId: c.peerIdOf(key), key: publicKeyToBase64(key), name: nodeName(e.version, c.networkKey), self: false,
        timestampMs: e.timestampMs, expiresAtMs: e.version.expiresAtMs, report: p?.report, ...(p?.problem !== undefined ? { problem: p.problem } : {})
      })
    }
    for (const name of parsed.keys()) if (!seen.has(name)) parsed.delete(name)
    return out
  }

  return { view: async q => fleetView(await sources(), c.nowMs(), q) }
}

/**
 * The node name from the membership certificate the report carries. The
 * attachments are unsigned (a relay may add to them), so the certificate is
 * checked again, as acceptance did.
 */
function nodeName (v: SignedVersion, networkKey: Uint8Array): string {
  for (const bytes of attachmentsOf(v.attachments, AttachmentType.Certificate)) {
    try {
      const cert = decodeCertificate(bytes)
      if (verifyCertificate(cert, { kind: CertKind.Membership, subject: v.signer, issuers: [networkKey], atMs: v.timestampMs }) === undefined) return cert.name
    } catch {}
  }
  return ''
}
