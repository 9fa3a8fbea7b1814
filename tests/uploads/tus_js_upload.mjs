// Upload one file with tus-js-client (Node), as the interop test drives it.
// usage: node tus_js_upload.mjs ENDPOINT TOKEN FILE URL_STORAGE CHUNK_BYTES [ABORT_AFTER_BYTES]
// Resumes a previous upload of the same file found in URL_STORAGE. Prints one JSON line.
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, token, file, storagePath, chunk, abortAfter] = process.argv.slice(2)
const size = fs.statSync(file).size
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize: Number(chunk),
  uploadSize: size,
  retryDelays: [0, 50, 100, 200, 400, 800, 1600, 3200],
  headers: { Authorization: `token ${token}` },
  metadata: { filename: path.basename(file), dir: 'interop-js' },
  urlStorage: new tus.FileUrlStorage(storagePath),
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: false,
  onProgress (sent) {
    if (abortAfter && sent >= Number(abortAfter)) {
      upload.abort(false).then(() => {
        console.log(JSON.stringify({ aborted: true, sent, url: upload.url }))
        process.exit(0)
      })
    }
  },
  onError (err) {
    console.log(JSON.stringify({ error: String(err) }))
    process.exit(1)
  },
  onSuccess () {
    console.log(JSON.stringify({ done: true, url: upload.url }))
  }
})

const previous = await upload.findPreviousUploads()
if (previous.length) upload.resumeFromPreviousUpload(previous[0])
upload.start()
