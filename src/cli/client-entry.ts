// The entry of the client bundle, dist/client/client.js (scripts/bundle.mjs):
// every verb but those bin/dm sends to the full bundle (daemon, id, config,
// network). No polyfill: nothing here loads libp2p.
export { main } from './main.js'
