// Benchmark peer: @tus/server with @tus/file-store, the reference tus server for Node.
// usage: node bench/tus_node_server.mjs PORT DIRECTORY   (serves /files/)
import http from 'node:http'
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'

const [port, directory] = process.argv.slice(2)
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }), relativeLocation: true })
const server = http.createServer((req, res) => tus.handle(req, res))
server.listen(Number(port), '127.0.0.1', () => console.log(`listening ${port}`))
process.on('SIGTERM', () => { server.close(); process.exit(0) })
