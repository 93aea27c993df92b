// The entry point that is bundled into dist/bundle/dm.js (see package.json "build").
// The polyfill comes first: libp2p must never load without it.
import '../polyfill.js'
import { main } from './main.js'

// Exit explicitly: a daemon that failed to start may hold handles that would keep it alive.
process.exit(await main(process.argv.slice(2)))
