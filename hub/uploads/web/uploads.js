// The AstraGo upload page: Uppy's dashboard over the service's tus endpoint.
// Bundled by esbuild (`npm run build`) into hub/static/uploads/; no CDN.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Tus from '@uppy/tus'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './uploads.css'

const cfg = JSON.parse(document.getElementById('astrago-upload-config').textContent)
const $ = (id) => document.getElementById(id)

function fmt (n) {
  const units = [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]
  for (const [unit, size] of units) if (n >= size) return `${(n / size).toFixed(1)} ${unit}`
  return `${n} B`
}

function cleanDir (value) {
  return value.trim().replace(/^\.\/+/, '').replace(/\/+$/, '')
}

function showUsage (u) {
  $('ag-free').textContent = fmt(u.free_bytes)
  $('ag-quota').textContent = fmt(u.quota_bytes)
  $('ag-stored').textContent = fmt(u.stored_bytes)
  $('ag-pending').textContent = fmt(u.pending_bytes)
  const used = Math.min(1, (u.quota_bytes - u.free_bytes) / Math.max(1, u.quota_bytes))
  const fill = $('ag-meter-fill')
  fill.style.width = `${(used * 100).toFixed(1)}%`
  fill.className = used > 0.9 ? 'full' : used > 0.7 ? 'high' : ''
}

async function refreshUsage () {
  try {
    const r = await fetch(cfg.listUrl, { credentials: 'same-origin', headers: { Accept: 'application/json', 'X-XSRFToken': cfg.xsrf } })
    if (r.ok) showUsage((await r.json()).storage)
  } catch (e) { /* the numbers stay as they were */ }
}

const uppy = new Uppy({
  id: 'astrago-uploads',
  autoProceed: false,
  restrictions: { maxFileSize: cfg.maxUploadBytes },
  meta: { dir: '', overwrite: 'false' },
  onBeforeFileAdded: (file) => {
    if (file.size > cfg.usage.free_bytes + 0) {
      // the server has the last word (413); this only warns early
      uppy.info(`${file.name} is larger than your free quota (${fmt(cfg.usage.free_bytes)}).`, 'warning', 6000)
    }
    return true
  }
})

uppy.use(Dashboard, {
  inline: true,
  target: '#uppy',
  width: '100%',
  height: 380,
  theme: 'light',
  proudlyDisplayPoweredByUppy: false,
  showProgressDetails: true,
  note: `Up to ${fmt(cfg.maxUploadBytes)} per file · resumable`
})

uppy.use(Tus, {
  endpoint: cfg.endpoint,
  chunkSize: cfg.chunkBytes,
  retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
  // HubOAuth checks xsrf on cookie-authenticated requests that change things
  headers: { 'X-XSRFToken': cfg.xsrf },
  allowedMetaFields: ['name', 'type', 'dir', 'overwrite'],
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: true
})

function destination () {
  const dir = cleanDir($('ag-dir').value)
  $('ag-dest').innerHTML = ''
  const code = document.createElement('code')
  code.textContent = `${cfg.storageRoot}/${dir ? dir + '/' : ''}`
  $('ag-dest').append('Files land in ', code)
  uppy.setMeta({ dir, overwrite: $('ag-overwrite').checked ? 'true' : 'false' })
}

$('ag-dir').addEventListener('input', destination)
$('ag-overwrite').addEventListener('change', destination)
destination()
showUsage(cfg.usage)

uppy.on('upload-success', (file) => {
  const dir = file.meta.dir ? `${file.meta.dir}/` : ''
  $('ag-status').textContent = `${file.name} is in ${cfg.storageRoot}/${dir}`
  refreshUsage()
})
uppy.on('upload-error', (file, error) => {
  const body = error && error.originalResponse ? error.originalResponse.getBody() : ''
  let detail = error ? error.message : 'unknown error'
  try { detail = JSON.parse(body).detail || detail } catch (e) { /* not problem+json */ }
  $('ag-status').textContent = `${file ? file.name : 'Upload'} failed: ${detail}`
  uppy.info(detail, 'error', 10000)
  refreshUsage()
})
uppy.on('complete', refreshUsage)

window.astragoUppy = uppy
