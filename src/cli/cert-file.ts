import fs from 'node:fs'
import { DmError, describeError } from '../errors.js'
import { withCertificates } from '../format/attachments.js'
import { decodeCertificate, type Certificate } from '../format/certificate.js'
import type { SignedVersion } from '../format/version.js'

/** Largest certificate file read: a certificate is under 400 bytes. */
const MAX_CERT_FILE_BYTES = 4096

/** Reads and decodes a certificate file, one clear line for each way it can be wrong. */
export function readCertificateFile (file: string): { cert: Certificate, bytes: Buffer } {
  let bytes: Buffer
  try {
    if (fs.statSync(file).size > MAX_CERT_FILE_BYTES) throw new DmError('ERR_USAGE', `${file}: larger than any certificate`)
    bytes = fs.readFileSync(file)
  } catch (err) {
    if (err instanceof DmError) throw err
    throw new DmError('ERR_USAGE', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeError(err)}`)
  }
  try {
    return { cert: decodeCertificate(bytes), bytes }
  } catch (err) {
    throw new DmError('ERR_CERT_INVALID', `${file}: not a certificate (${describeError(err)})`)
  }
}

/**
 * The version with the certificate in `file` attached (dm publish --cert,
 * dm sign --cert). Refused here when it vouches for another key, so the
 * mistake shows at the keyboard rather than as a refusal on every node.
 */
export function attachCertificateFile (v: SignedVersion, file: string): SignedVersion {
  const { cert, bytes } = readCertificateFile(file)
  if (!Buffer.from(cert.subject).equals(v.signer)) throw new DmError('ERR_CERT_INVALID', `${file} certifies ${Buffer.from(cert.subject).toString('base64')}, not the signer ${Buffer.from(v.signer).toString('base64')}`)
  return withCertificates(v, [bytes])
}
