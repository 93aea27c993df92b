// The entry of the full bundle, dist/full/dm.js (scripts/bundle.mjs): every
// verb; bin/dm runs daemon, id, config and network from it.
// The polyfill comes first: libp2p must never load without it.
import '../polyfill.js'
export { main } from './main.js'
