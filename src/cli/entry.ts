// The entry point that is bundled into dist/bundle/dm.js (see package.json "build").
// The polyfill comes first: libp2p must never load without it.
import '../polyfill.js'
import { main } from './main.js'

process.exitCode = await main(process.argv.slice(2))
